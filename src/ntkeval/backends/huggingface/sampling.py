"""Drawing completions from a model, and scoring them exactly afterwards.

Each question gets its own random stream, seeded by the caller, and its N completions are drawn together from one
encoding of the prompt (no padding: every row has the same length). So a question's samples do not depend on which
other questions are drawn, in what order or batch, and a rerun gives the same tokens.

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

import torch

from ntkeval.backends.base import Completion, SamplingSpec
from ntkeval.backends.huggingface.teacher_forcing import score_pairs
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_prompt
from ntkeval.progress import progress


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None) if config is not None else None
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return {i for i in ids if i is not None}


def next_token_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The log of the sampling distribution over the vocabulary for each row of logits (float32; -inf outside the
    top-p nucleus)."""
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
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


@torch.inference_mode()
def draw(model, tokenizer, prompt: str, spec: SamplingSpec, seed: int) -> list[Completion]:
    """spec.n completions of one prompt, from a random stream seeded by `seed` alone."""
    device = next(model.parameters()).device
    ids = encode_prompt(tokenizer, prompt)
    generator = torch.Generator().manual_seed(seed)
    eos = _eos_ids(model, tokenizer)
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
    past = out.past_key_values
    past.batch_repeat_interleave(spec.n)
    logits = out.logits[:, -1].expand(spec.n, -1)
    drawn: list[list[int]] = [[] for _ in range(spec.n)]
    logp = [0.0] * spec.n
    done: list[Completion | None] = [None] * spec.n
    for step in range(spec.max_new_tokens):
        logprobs = next_token_logprobs(logits, spec.temperature, spec.top_p).cpu()
        tokens = torch.multinomial(logprobs.exp(), 1, generator=generator)[:, 0]
        # the log-probability each row's token was drawn with, from the very distribution it was drawn from
        token_logp = logprobs.gather(1, tokens[:, None])[:, 0].tolist()
        for row, token in enumerate(tokens.tolist()):
            if done[row] is None:
                drawn[row].append(token)
                logp[row] += token_logp[row]
                finished = _finish(tokenizer, drawn[row], spec.stop, eos)
                if finished is not None:
                    done[row] = Completion(tuple(drawn[row]), *finished, logp[row])
        if all(d is not None for d in done) or step + 1 == spec.max_new_tokens:
            break
        # Finished rows keep being extended (their tokens are ignored): every row stays the same length.
        logits = model(input_ids=tokens[:, None].to(device), past_key_values=past, use_cache=True).logits[:, -1]
    return [d if d is not None else
            Completion(tuple(row), tokenizer.decode(row, skip_special_tokens=True), "length", lp)
            for d, row, lp in zip(done, drawn, logp)]


def draw_all(model, tokenizer, prompts: list[str], spec: SamplingSpec, seeds: list[int],
             desc: str = "sampling") -> list[list[Completion]]:
    return [draw(model, tokenizer, p, spec, s) for p, s in progress(list(zip(prompts, seeds)), desc=desc)]


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
