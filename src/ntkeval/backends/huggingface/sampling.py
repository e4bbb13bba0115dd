"""Drawing completions from a model, and scoring them exactly afterwards.

Each question gets its own random stream, seeded by the caller, and its N completions are drawn from one encoding of
its prompt. So a question's samples do not depend on which other questions are drawn, in what order or batch, and a
rerun gives the same tokens.

Several questions decode in one batch (at most max_rows rows: DEFAULT_MAX_ROWS says why that many), their prompts
encoded one by one, then left-padded to one length in the key/value cache, masked, each row at its own positions; a
row leaves the batch and its cache as soon as its completion ends, so ended completions cost nothing more. The draw
is still the per-question one. torch.multinomial(p, 1, generator) is argmax(p / q) over the vocabulary, q float32
Exp(1) noise of p's shape (the Gumbel-max trick, torch's path for one sample), and torch's CPU exponential_ makes q
from one 64-bit draw of the generator per element. So at every step where a question has a row still running, its
stream gives the draws of all N rows' noise, as the per-question draw's multinomial took them; the noise is made for
the running rows alone (_exponential), and each takes the argmax of its own p / q. A question's stream is therefore
consumed the same whatever shares its batch and whichever of its rows have ended (and the streams of a batch's
questions are drawn in parallel threads, each by its own). tests/test_sampling_batched.py
checks both facts about torch; were either to change, this would still sample the model exactly (argmax(p / q) with
Exp(1) noise is a draw from p), only no longer the tokens the old draw gave. The logits depend on the batch only by
float rounding (a matrix product of another shape, a padded attention), which changes a token only where two
candidates tie within that rounding: in float32 the tests hold the batched draw to the per-question one
(tests/sampling_reference.py) token for token; in bfloat16 the rounding is coarse enough that 1 completion in 80
differed on a tiny model when five questions shared a batch (each still an exact draw from the logits it was given,
with their log p). A batch that runs out of accelerator memory is drawn again with fewer questions
(ntkeval.backends.huggingface.oom): each question's stream restarts from its seed, so the tokens are the same (to
that rounding).

A completion ends at the first of: a stop string in its text, an end-of-sequence token, or max_new_tokens. Its
tokens are kept exactly as drawn (the end-of-sequence token included), so its probability under any model is the
product of the probabilities of exactly those tokens: what importance weights need. Nothing else ends a completion,
so at temperature 1 and top-p 1 a given token sequence that ends at its first stop string (or EOS) and is at most
max_new_tokens long is drawn with exactly its probability under the model.

Each completion also carries `logp`: the log-probability of its tokens under the distribution they were actually
drawn from (temperature and top-p applied, float32 softmax of the very logits the sampler used, summed in float64).
Importance weights use it for the sampler's own probability, so the denominator of every weight is the proposal
density by construction, whatever the dtype or attention kernel; a teacher-forced re-score of the same tokens
agrees with it to ~1e-5 in float32 but not in bfloat16, where an incremental (key/value cache) pass and a full
forward pass round differently (tests/test_sampling.py measures both).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ntkeval.backends.base import Completion, SamplingSpec
from ntkeval.backends.huggingface.oom import ShrinkingBatches
from ntkeval.backends.huggingface.teacher_forcing import score_pairs
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_prompt
from ntkeval.progress import progress

# Rows decoding together at most (questions per batch: max_rows // n, at least one). On smollm2, CPU, n=64, arith
# questions, max_new_tokens 16 (launch/bench_sampling.py): 1 thread, 16 questions, CPU seconds 58.9 at 64 rows,
# 46.3 at 128, 44.8 at 256 and 512, 50.3 at 1024; 2 idle threads, 8 questions, 12.4 s at 256, 11.2 s at 512. 512 is
# ~10% faster on two cores but holds twice the key/value cache: with 8 in-context demonstrations (~400 tokens) 512
# rows of smollm2 hold ~9 GB in float32. On an accelerator a batch that does not fit is halved (draw_all).
DEFAULT_MAX_ROWS = 256
_MANTISSA = (1 << 53) - 1  # the random bits of a float64 in [0, 1) that torch's CPU generator kernels draw
_ULP = 2.0 ** -53
_MIN_ROOM = 32  # positions a key/value buffer grows by at least (_BufferedLayer)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None) if config is not None else None
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return {i for i in ids if i is not None}


def next_token_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The log of the sampling distribution over the vocabulary for each row of logits (float32; -inf outside the
    top-p nucleus)."""
    scaled = logits.float() / temperature if temperature != 1.0 else logits.float()  # x / 1.0 is x: one pass less
    logprobs = torch.log_softmax(scaled, dim=-1)
    if top_p < 1.0:
        ordered, index = logprobs.exp().sort(dim=-1, descending=True)
        outside = ordered.cumsum(dim=-1) - ordered >= top_p  # the nucleus is already full before this token
        inside = torch.zeros_like(outside).scatter(-1, index, ~outside)
        logprobs = logprobs.masked_fill(~inside, float("-inf"))
        logprobs = logprobs - logprobs.logsumexp(dim=-1, keepdim=True)
    return logprobs


def next_token_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The sampling distribution over the vocabulary for each row of logits."""
    return next_token_logprobs(logits, temperature, top_p).exp()


def _finish(tokenizer, tokens: list[int], stop: tuple[str, ...], eos: set[int]) -> tuple[str, str] | None:
    """(text, end) when a completion is over, else None."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cuts = [text.index(s) for s in stop if s in text]
    if cuts:
        return text[:min(cuts)], "stop"
    if tokens[-1] in eos:
        return text, "eos"
    return None


@dataclass
class _Question:
    """One question being drawn: its random stream, this step's draws from it, and its n completions so far."""
    generator: torch.Generator
    n: int
    drawn: list[list[int]] = field(init=False)
    logp: list[float] = field(init=False)
    done: list[Completion | None] = field(init=False)
    raw: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self):
        self.drawn = [[] for _ in range(self.n)]
        self.logp = [0.0] * self.n
        self.done = [None] * self.n

    def draw(self, vocab: int) -> None:
        """This step's 64-bit draws for all n rows, ended ones included: the stream advances as torch.multinomial
        advanced it for an (n, vocab) distribution (into one buffer, reused every step)."""
        if self.raw is None:
            self.raw = torch.empty((self.n, vocab), dtype=torch.int64)
        self.raw.random_(generator=self.generator)

    def noise(self, rows: list[int]) -> torch.Tensor:
        """This step's Exp(1) noise of the given rows, in their order, made for them alone (once a step: it may
        overwrite the draws)."""
        return _exponential(self.raw if rows == list(range(self.n)) else self.raw[torch.tensor(rows)])

    def completions(self, tokenizer) -> list[Completion]:
        return [d if d is not None else
                Completion(tuple(row), tokenizer.decode(row, skip_special_tokens=True), "length", lp)
                for d, row, lp in zip(self.done, self.drawn, self.logp)]


class _Batch:
    """The rows still running, each with its (question, completion index), and their key/value cache (prompts
    left-padded to one length), attention mask, next positions and next-token logits."""

    def __init__(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int):
        self.device = next(model.parameters()).device
        lengths, caches, logits = [], [], []
        for prompt in prompts:
            # each prompt alone, as the per-question draw encoded it: its first tokens' logits are exactly those
            ids = encode_prompt(tokenizer, prompt)
            cache = DynamicCache()
            out = model(input_ids=torch.tensor([ids], device=self.device), past_key_values=cache, use_cache=True,
                        logits_to_keep=1)
            lengths.append(len(ids))
            caches.append(cache)
            logits.append(out.logits[:, -1].expand(n, -1))
        # a row is fed at most max_new_tokens - 1 drawn tokens: room for them all, or for a quarter of the width
        # (at least _MIN_ROOM) if that is less, grown as needed
        width = max(lengths)
        room = min(max_new_tokens - 1, _room(width))
        self.cache = DynamicCache()
        self.cache.layers = [_BufferedLayer(_stacked([c.layers[layer].keys for c in caches], n, width, room),
                                            _stacked([c.layers[layer].values for c in caches], n, width, room),
                                            width)
                             for layer in range(len(caches[0].layers))]
        self.positions = torch.tensor(lengths, device=self.device).repeat_interleave(n)  # the next token's
        self.mask = torch.arange(width, device=self.device) >= width - self.positions[:, None]
        self.rows = [(question, row) for question in range(len(prompts)) for row in range(n)]
        self.logits = torch.cat(logits)

    def keep(self, kept: list[int]) -> list[int]:
        """Drop every row not in `kept` (batch indices, ascending), from the cache too, so an ended completion costs
        nothing more: the kept rows beyond the new size move into the places of dropped ones (only they are
        copied), and the batch ends at the new size. The old batch index of each row, in the new order."""
        if len(kept) == len(self.rows):
            return kept
        size, order = len(kept), list(range(len(kept)))
        holes = sorted(set(order) - set(kept))
        movers = [b for b in kept if b >= size]  # as many as there are holes
        for hole, mover in zip(holes, movers):
            order[hole] = mover
        holes_at, movers_at = (torch.tensor(b, dtype=torch.long, device=self.device) for b in (holes, movers))
        for layer in self.cache.layers:
            layer.move_rows(holes_at, movers_at, size)
        index = torch.tensor(order, device=self.device)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.rows = [self.rows[b] for b in order]
        return order

    def advance(self, model, tokens: torch.Tensor) -> None:
        """Feed each running row its drawn token; the logits of the next one replace the current."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        out = model(input_ids=tokens[:, None].to(self.device), attention_mask=self.mask,
                    position_ids=self.positions[:, None], past_key_values=self.cache, use_cache=True)
        self.positions = self.positions + 1
        self.logits = out.logits[:, -1]


def _stacked(states: list[torch.Tensor], n: int, width: int, room: int) -> torch.Tensor:
    """One buffer for a layer's keys (or values) of every row: each prompt's (1, heads, length, dim) states repeated
    for its n rows, right-aligned at `width` after zeros (masked), then `room` positions left empty."""
    first = states[0]
    buffer = first.new_empty((n * len(states), first.shape[1], width + room, first.shape[3]))
    for i, part in enumerate(states):
        pad = width - part.shape[-2]
        buffer[i * n:(i + 1) * n, :, :pad] = 0
        buffer[i * n:(i + 1) * n, :, pad:width] = part
    return buffer


class _BufferedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are the filled start of buffers with room for more tokens. A step writes
    its key and value in place, where DynamicLayer copies the whole cache (torch.cat) to add one position; a full
    buffer is copied into one a quarter larger (so a long completion copies its cache a few times, not every step,
    and no row holds room for more than a quarter of its length beyond what the draw can use); dropping rows copies
    only the rows that move into their places (move_rows)."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int):
        super().__init__()
        self.lazy_initialization(key_buffer, value_buffer)
        self._buffers = (key_buffer, value_buffer)
        self._expose(length)

    def _expose(self, length: int) -> None:
        self.keys, self.values = (buffer[:, :, :length] for buffer in self._buffers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if length + new > self._buffers[0].shape[-2]:  # full: copy into larger buffers, a quarter more
            room = max(new, _room(length))
            self._buffers = tuple(_rows_of(states, None, room) for states in (self.keys, self.values))
        for buffer, states in zip(self._buffers, (key_states, value_states)):
            buffer[:, :, length:length + new] = states
        self._expose(length + new)
        return self.keys, self.values

    def move_rows(self, holes: torch.Tensor, movers: torch.Tensor, size: int) -> None:
        """Copy the rows `movers` into the rows `holes`, then keep the first `size` rows (a view: nothing else is
        copied)."""
        length = self.keys.shape[-2]
        for buffer in self._buffers if holes.numel() else ():
            buffer[holes, :, :length] = buffer[movers, :, :length]
        self._buffers = tuple(buffer[:size] for buffer in self._buffers)
        self._expose(length)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        room = self._buffers[0].shape[-2] - self.keys.shape[-2]
        self._buffers = tuple(_rows_of(states, indices, room) for states in (self.keys, self.values))
        self._expose(self.keys.shape[-2])


def _room(length: int) -> int:
    """Positions a buffer of `length` filled positions grows by: a quarter, at least _MIN_ROOM."""
    return max(_MIN_ROOM, length // 4)


def _rows_of(states: torch.Tensor, indices: torch.Tensor | None, room: int) -> torch.Tensor:
    """A new buffer holding `states` (the rows at `indices`, or all) followed by `room` empty positions."""
    rows = states.shape[0] if indices is None else indices.numel()
    buffer = states.new_empty((rows, states.shape[1], states.shape[2] + room, states.shape[3]))
    if indices is None:
        buffer[:, :, :states.shape[2]] = states
    else:
        torch.index_select(states, 0, indices, out=buffer[:, :, :states.shape[2]])
    return buffer


def _exponential(raw: torch.Tensor) -> torch.Tensor:
    """float32 Exp(1) noise from the generator's 64-bit draws (random_ on int64 gives them, one per element), made as
    torch's CPU exponential_ makes it from the same draws: u = the low 53 bits / 2^53, q = -log(1 - u) in float64,
    rounded to float32 (the float64 log's last bit may differ, which float32 rounding hides). exponential_ itself
    spends most of its time on that log, one element at a time; here only the draws are serial, and the log is
    vectorised and made for the rows still running only. `raw` is overwritten."""
    minus_u = raw.bitwise_and_(_MANTISSA).double().mul_(-_ULP)
    return minus_u.log1p_().float().neg_()


def _draw_tokens(questions: list[_Question], batch: _Batch, spec: SamplingSpec) -> tuple[list[int], list[float]]:
    """Each running row's token and the log p it was drawn with, in batch order, question by question (no tensor
    of the whole batch over the vocabulary is made but the logits)."""
    tokens, token_logp = [0] * len(batch.rows), [0.0] * len(batch.rows)
    by_question: dict[int, tuple[list[int], list[int]]] = {}  # question: (its batch indices, its rows there)
    for b, (question, row) in enumerate(batch.rows):
        where, which = by_question.setdefault(question, ([], []))
        where.append(b)
        which.append(row)
    for question, (where, which) in by_question.items():
        logits = batch.logits[torch.tensor(where, device=batch.device)]
        logprobs = next_token_logprobs(logits, spec.temperature, spec.top_p).cpu()
        # torch.multinomial(p, 1, generator) is this argmax, with the noise of p's shape (the module docstring)
        drawn = (logprobs.exp() / questions[question].noise(which)).argmax(dim=-1)
        # the log-probability each row's token was drawn with, from the very distribution it was drawn from
        chosen = logprobs.gather(1, drawn[:, None])[:, 0]
        for b, token, lp in zip(where, drawn.tolist(), chosen.tolist()):
            tokens[b], token_logp[b] = token, lp
    return tokens, token_logp


def _draw_streams(questions: list[_Question], vocab: int) -> None:
    """This step's draws of each question. torch draws a generator's numbers one at a time on one core; the questions'
    streams are independent, so they are drawn in parallel, up to torch's thread count."""
    workers = min(len(questions), torch.get_num_threads())
    if workers < 2:
        for question in questions:
            question.draw(vocab)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda question: question.draw(vocab), questions))


def _record(questions: list[_Question], rows: list[tuple[int, int]], tokens: list[int], token_logp: list[float],
            tokenizer, spec: SamplingSpec, eos: set[int]) -> list[int]:
    """Append each running row's token and its log p; the batch indices of the rows that go on."""
    kept = []
    for b, ((question, row), token, lp) in enumerate(zip(rows, tokens, token_logp)):
        q = questions[question]
        q.drawn[row].append(token)
        q.logp[row] += lp
        finished = _finish(tokenizer, q.drawn[row], spec.stop, eos)
        if finished is None:
            kept.append(b)
        else:
            q.done[row] = Completion(tuple(q.drawn[row]), *finished, q.logp[row])
    return kept


@torch.inference_mode()
def _draw_together(model, tokenizer, prompts: list[str], seeds: list[int], spec: SamplingSpec,
                   eos: set[int]) -> list[list[Completion]]:
    """spec.n completions of each prompt, all rows in one batch, each question from its own seed's stream."""
    batch = _Batch(model, tokenizer, prompts, spec.n, spec.max_new_tokens)
    questions = [_Question(torch.Generator().manual_seed(seed), spec.n) for seed in seeds]
    vocab = batch.logits.shape[-1]
    _draw_streams(questions, vocab)
    for step in range(spec.max_new_tokens):
        tokens, token_logp = _draw_tokens(questions, batch, spec)
        kept = _record(questions, batch.rows, tokens, token_logp, tokenizer, spec, eos)
        if not kept or step + 1 == spec.max_new_tokens:
            break
        batch.advance(model, torch.tensor(tokens)[batch.keep(kept)])
        # the next step's draws of each question with a row still running, on the CPU while an accelerator computes
        _draw_streams([questions[question] for question in dict.fromkeys(q for q, _ in batch.rows)], vocab)
    return [q.completions(tokenizer) for q in questions]


def draw(model, tokenizer, prompt: str, spec: SamplingSpec, seed: int) -> list[Completion]:
    """spec.n completions of one prompt, from a random stream seeded by `seed` alone."""
    return _draw_together(model, tokenizer, [prompt], [seed], spec, _eos_ids(model, tokenizer))[0]


def draw_all(model, tokenizer, prompts: list[str], spec: SamplingSpec, seeds: list[int],
             desc: str | None = "sampling", max_rows: int = DEFAULT_MAX_ROWS) -> list[list[Completion]]:
    """spec.n completions of each prompt, question i from a stream seeded by seeds[i] alone: the same tokens as
    `draw` question by question. Questions decode max_rows // spec.n at a time (at least one); a batch that runs out
    of memory is drawn again with half as many. desc: the progress bar's label (None: no progress report)."""
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; valid: one seed per prompt")
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
        raise ValueError(f"max_rows={max_rows!r} is invalid; valid: an integer >= 1 (rows decoding together)")
    eos = _eos_ids(model, tokenizer)
    per_batch = max(1, max_rows // spec.n)
    batches = ShrinkingBatches(per_batch, what=desc or "sampling")
    questions = list(zip(prompts, seeds))
    chunks = [questions[start:start + per_batch] for start in range(0, len(questions), per_batch)]

    def compute(group: list[tuple[str, int]]) -> list[list[Completion]]:
        return _draw_together(model, tokenizer, [p for p, _ in group], [s for _, s in group], spec, eos)

    drawn: list[list[Completion]] = []
    for chunk in progress(chunks, desc=desc, total_items=len(questions)) if desc else chunks:
        drawn.extend(batches.run(chunk, compute))
    return drawn


def completion_logprobs(model, tokenizer, prompts: list[str], completions: list[list[Completion]],
                        batch_size: int = 16, desc: str = "scoring samples") -> list[list[float]]:
    """log p(completion tokens | prompt) under `model` for every completion: the drawn token ids, teacher-forced
    after the prompt's own encoding (the same tokens `draw` conditioned on). Used for the other model's probability
    of a sampler's completions (the sampler's own is the recorded `Completion.logp`). A question's completions
    share its prompt, so the prompt is encoded once per question and its key/value cache reused for all of them."""
    out = []
    for prompt, drawn in progress(list(zip(prompts, completions)), desc=desc):
        context = encode_prompt(tokenizer, prompt)
        pairs = [EncodedPair(context=list(context), answer=list(c.tokens)) for c in drawn]
        out.append([s.logprob for s in score_pairs(model, tokenizer, pairs, batch_size, desc=None,
                                                   reuse_prefix=True)])
    return out
