"""The batched draw is the per-question draw: the same token ids and log p as the draw it replaced
(tests/sampling_reference.py) for the same seeds, whatever questions share a batch; the two facts about torch's
generator that make it so; ended rows leave the batch; a batch that runs out of memory is redrawn smaller with the
same tokens."""

import logging

import pytest
import torch
from sampling_fakes import LogitBias
from sampling_reference import reference_draw, reference_draw_all
from transformers.cache_utils import DynamicLayer

from ntkeval.backends.base import SamplingSpec
from ntkeval.backends.huggingface import sampling
from ntkeval.backends.huggingface.sampling import draw, draw_all
from ntkeval.backends.huggingface.tiny import TinyModel

# different lengths (the empty prompt is one token), so a batch pads most of its rows
PROMPTS = ["Q: What is 3+4?\nA:", "Q: 12*30?\nA:", "Q: What is the sum of 123 and 456 and 789, twice?\nA:", "",
           "Q: 9-1=\nA:"]
SEEDS = [11, 12, 13, 14, 15]
# plain sampling and tempered nucleus sampling, with stop strings the tiny models write often enough
SPECS = [SamplingSpec(n=8, max_new_tokens=12, stop=("\n", "1", "2", "A")),
         SamplingSpec(n=6, max_new_tokens=20, temperature=0.7, top_p=0.8, stop=("A", "e"))]
OOM_LOG = "ntkeval.backends.huggingface.oom"


@pytest.fixture(scope="module", params=["llama", "mistral"])
def both_tiny(request):
    return TinyModel(arch=request.param, initializer_range=0.3).load("cpu")


class Rows(torch.nn.Module):
    """The model on a device that holds at most `limit` rows (more raise torch's OutOfMemoryError, as a GPU would);
    records each forward pass's rows and whether it was a decoding step (those pass an attention mask)."""

    def __init__(self, model, limit: int | None = None):
        super().__init__()
        self.model, self.limit, self.generation_config = model, limit, model.generation_config
        self.calls: list[tuple[int, bool]] = []

    def forward(self, input_ids, **kwargs):
        self.calls.append((input_ids.shape[0], "attention_mask" in kwargs))
        if self.limit is not None and input_ids.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
        return self.model(input_ids=input_ids, **kwargs)


def assert_same_draws(got, want) -> None:
    """Token for token the same completions; log p the same to float32 rounding of the logits (a batch of another
    shape rounds a logit's last bit differently: at most ~2e-6 relative over 20 tokens, measured)."""
    assert [[c.tokens for c in q] for q in got] == [[c.tokens for c in q] for q in want]
    assert [[(c.text, c.end) for c in q] for q in got] == [[(c.text, c.end) for c in q] for q in want]
    for q_got, q_want in zip(got, want):
        for c_got, c_want in zip(q_got, q_want):
            assert c_got.logp == pytest.approx(c_want.logp, rel=1e-5, abs=1e-5)


def test_multinomial_takes_the_argmax_of_p_over_exponential_noise():
    """The fact the batched draw rests on: torch.multinomial(p, 1, generator) is argmax(p / q), q an Exp(1) tensor of
    p's shape from the generator (the Gumbel-max trick), and it leaves the generator where drawing q does; zeros
    (outside a top-p nucleus) included."""
    shapes = [(1, 5), (7, 271), (64, 1000), (3, 49152)]
    for seed, shape in enumerate(shapes):
        p = torch.softmax(torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 4, dim=-1)
        p[:, shape[1] // 2:] *= seed % 2  # half the vocabulary outside the nucleus, for every other shape
        by_multinomial, by_argmax = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        drawn = torch.multinomial(p, 1, generator=by_multinomial)[:, 0]
        q = torch.empty_like(p).exponential_(1, generator=by_argmax)
        assert torch.equal(drawn, (p / q).argmax(dim=-1))
        assert torch.equal(by_multinomial.get_state(), by_argmax.get_state())


@pytest.mark.parametrize("shape", [(64, 49152), (6, 271)])
def test_the_noise_is_exponential_s_from_the_same_draws(shape):
    """exponential_ on float32 spends one 64-bit draw per element, as random_ on int64 does, and makes it into noise
    as sampling._exponential does: bitwise the same noise, the generator left in the same state, and any rows of it
    made from those rows' draws alone."""
    by_exponential, by_draws = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    want = torch.empty(shape).exponential_(1, generator=by_exponential)
    raw = torch.empty(shape, dtype=torch.int64).random_(generator=by_draws)
    assert torch.equal(by_exponential.get_state(), by_draws.get_state())
    rows = torch.tensor([0, 2, shape[0] - 1])
    assert torch.equal(sampling._exponential(raw[rows]), want[rows])
    assert torch.equal(sampling._exponential(raw.clone()), want)


def test_a_buffered_layer_holds_what_a_dynamic_layer_holds():
    """The sampler's key/value layer writes in place and grows its buffers a quarter at a time; through appends that
    outgrow them and rows dropped (moved into the places of others, or selected), it exposes the very keys and values
    transformers' DynamicLayer holds."""
    start, room = torch.randn(6, 2, 5, 4), torch.zeros(6, 2, 3, 4)
    buffered = sampling._BufferedLayer(torch.cat([start, room], dim=2), torch.cat([start + 1, room], dim=2), 5)
    dynamic = DynamicLayer()
    dynamic.update(start, start + 1)
    generator = torch.Generator().manual_seed(0)
    moves = {9: ([1], [5], [0, 5, 2, 3, 4]),  # (holes, movers, new order): row 1 ends, the last row moves there
             19: ([], [], [0, 1, 2, 3]),      # the last row ends: nothing moves
             39: ([0], [1], [1])}             # row 0 ends (rows 1, 2 end at step 29: selected as transformers does)
    for step in range(45):  # 5 + 3 positions at first, then at least sampling._MIN_ROOM more at a time
        new = torch.randn(dynamic.keys.shape[0], 2, 1, 4, generator=generator)
        got = buffered.update(new, -new)
        assert all(torch.equal(a, b) for a, b in zip(got, dynamic.update(new, -new)))
        if step == 29:
            buffered.batch_select_indices(torch.tensor([0, 3]))
            dynamic.batch_select_indices(torch.tensor([0, 3]))
        elif step in moves:
            holes, movers, order = moves[step]
            buffered.move_rows(torch.tensor(holes, dtype=torch.long), torch.tensor(movers, dtype=torch.long),
                               len(order))
            dynamic.batch_select_indices(torch.tensor(order))
    assert buffered.get_seq_length() == dynamic.get_seq_length() == 50 and dynamic.keys.shape[0] == 1
    assert torch.equal(buffered.keys, dynamic.keys) and torch.equal(buffered.values, dynamic.values)


@pytest.mark.parametrize("spec", SPECS, ids=["plain", "tempered-nucleus"])
def test_the_batched_draw_is_the_per_question_draw(both_tiny, spec):
    """Several groups of questions (max_rows fits two questions), prompts of different lengths padded together, rows
    ending at different steps: the completions of the per-question draw, token for token."""
    model, tokenizer = both_tiny
    want = reference_draw_all(model, tokenizer, PROMPTS, spec, SEEDS)
    got = draw_all(model, tokenizer, PROMPTS, spec, SEEDS, desc=None, max_rows=2 * spec.n + 1)
    assert_same_draws(got, want)
    lengths = {len(c.tokens) for q in got for c in q}
    assert len(lengths) > 3 and max(lengths) == spec.max_new_tokens  # rows ended at many different steps
    assert {c.end for q in got for c in q} >= {"stop", "length"}


def test_completions_ending_at_eos_are_the_per_question_draw(both_tiny):
    """A completion that draws the end-of-sequence token ends there, the token kept, in both draws alike (the EOS
    logit raised so that about a third of the completions end so)."""
    base, tokenizer = both_tiny
    bias = torch.zeros(len(tokenizer))
    bias[tokenizer.eos_token_id] = 3.0
    model = LogitBias(base, bias).eval()
    spec = SamplingSpec(n=8, max_new_tokens=12, stop=("\n",))
    want = reference_draw_all(model, tokenizer, PROMPTS, spec, SEEDS)
    got = draw_all(model, tokenizer, PROMPTS, spec, SEEDS, desc=None, max_rows=3 * spec.n)
    assert_same_draws(got, want)
    ended = [c for q in got for c in q if c.end == "eos"]
    assert len(ended) >= 10 and all(c.tokens[-1] == tokenizer.eos_token_id for c in ended)


def test_a_questions_completions_do_not_depend_on_the_batch_it_shares(both_tiny):
    model, tokenizer = both_tiny
    spec = SPECS[0]
    alone = draw(model, tokenizer, PROMPTS[2], spec, SEEDS[2])
    assert [c.tokens for c in alone] == [c.tokens for c in reference_draw(model, tokenizer, PROMPTS[2], spec,
                                                                          SEEDS[2])]
    for order, max_rows in [([2, 0, 1], 3 * spec.n), ([3, 4, 0, 1, 2], 5 * spec.n), ([1, 2], spec.n)]:
        together = draw_all(model, tokenizer, [PROMPTS[i] for i in order], spec, [SEEDS[i] for i in order],
                            desc=None, max_rows=max_rows)
        assert_same_draws([together[order.index(2)]], [alone])


def test_ended_rows_leave_the_batch():
    """Each decoding pass runs exactly the rows still going: a completion of k tokens is fed k - 1 of them, one
    row per pass, so the rows summed over passes are sum(k - 1); the per-question draw ran every row of a question
    until its longest completion ended."""
    model, tokenizer = TinyModel(arch="llama", initializer_range=0.3).load("cpu")
    spec = SPECS[0]
    counting = Rows(model)
    drawn = draw_all(counting, tokenizer, PROMPTS, spec, SEEDS, desc=None, max_rows=2 * spec.n)
    decoding = [rows for rows, decodes in counting.calls if decodes]
    assert [rows for rows, decodes in counting.calls if not decodes] == [1] * len(PROMPTS)  # each prompt alone
    assert sum(decoding) == sum(len(c.tokens) - 1 for q in drawn for c in q)
    groups = groups_of(counting.calls)
    assert len(groups) == 3 and all(g == sorted(g, reverse=True) and g[0] <= 2 * spec.n for g in groups)
    per_question = sum(spec.n * (max(len(c.tokens) for c in q) - 1) for q in drawn)
    assert sum(decoding) < 0.8 * per_question


def groups_of(calls: list[tuple[int, bool]]) -> list[list[int]]:
    """The decoding passes' rows, one list per batch of questions (a batch begins by encoding its prompts)."""
    groups: list[list[int]] = []
    for previous, (rows, decodes) in zip([(0, True)] + calls, calls):
        if not decodes and previous[1]:
            groups.append([])
        if decodes:
            groups[-1].append(rows)
    return groups


def test_a_batch_out_of_memory_is_drawn_again_with_fewer_questions(caplog):
    """Five questions of six rows in one batch do not fit a device of 16 rows: the batch is redrawn two questions at
    a time (then the same size for the rest), logged once, with the tokens of a device that fitted."""
    model, tokenizer = TinyModel(arch="mistral", initializer_range=0.3).load("cpu")
    spec = SPECS[1]
    fitted = draw_all(model, tokenizer, PROMPTS, spec, SEEDS, desc=None, max_rows=5 * spec.n)
    small = Rows(model, limit=16)
    with caplog.at_level(logging.WARNING, logger=OOM_LOG):
        drawn = draw_all(small, tokenizer, PROMPTS, spec, SEEDS, desc="sampling t", max_rows=5 * spec.n)
    assert_same_draws(drawn, fitted)
    assert [r.getMessage() for r in caplog.records if r.name == OOM_LOG] == [
        "sampling t: out of memory at batch size 5; retrying at batch size 2 (numbers are unchanged)"]
    decoding = [rows for rows, decodes in small.calls if decodes]
    assert max(decoding) > 16 and max(decoding[decoding.index(max(decoding)) + 1:]) <= 12


def test_a_question_that_does_not_fit_alone_fails_naming_the_size():
    model, tokenizer = TinyModel(arch="llama", initializer_range=0.3).load("cpu")
    with pytest.raises(torch.OutOfMemoryError, match="batch size 1"):
        draw_all(Rows(model, limit=3), tokenizer, PROMPTS[:2], SPECS[0], SEEDS[:2], desc=None)


def test_bad_arguments_are_named_before_any_work():
    model, tokenizer = TinyModel(arch="llama").load("cpu")
    counting = Rows(model)
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        draw_all(counting, tokenizer, PROMPTS[:2], SPECS[0], SEEDS[:1])
    with pytest.raises(ValueError, match="max_rows=0 is invalid; valid: an integer >= 1"):
        draw_all(counting, tokenizer, PROMPTS[:2], SPECS[0], SEEDS[:2], max_rows=0)
    assert counting.calls == []
