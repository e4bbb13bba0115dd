"""Out-of-memory recovery on the scoring path: a teacher-forced scoring batch or an entk gradient batch that runs out of
device memory is retried at half the size (oom.ShrinkingBatches) with the same numbers and a logged warning; a batch
of one that does not fit becomes a one-line fault. The device is a tiny model behind a wrapper that raises torch's
OutOfMemoryError above a number of rows, as a small GPU would.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from ntkeval.backends.huggingface.gradients import answer_gradients
from ntkeval.backends.huggingface.oom import is_out_of_memory
from ntkeval.backends.huggingface.teacher_forcing import score_pairs, shared_prefix_length
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import encode_pair
from ntkeval.jobs.faults import describe

MESSAGE = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.2 GiB "
           "is free.")
DEMOS = "Q: 1+1\nA: 2\nQ: 5*3\nA: 15\nQ: 40-9\nA: 31\n"
CONFIG = {"scorer": {"batch_size": 16}, "model": {"dtype": "float32"}}
OOM_LOG = "ntkeval.backends.huggingface.oom"


class SmallDevice(torch.nn.Module):
    """The model on a device that holds at most `rows` sequences: more raise `error` in the forward pass, or in the
    backward pass when `in_backward` (where tuning and gradients usually run out). Records each batch's shape."""

    def __init__(self, model, rows: int, error: Exception | None = None, in_backward: bool = False):
        super().__init__()
        self.model, self.rows, self.in_backward = model, rows, in_backward
        self.error = error or torch.OutOfMemoryError(MESSAGE)
        self.shapes: list[tuple[int, int]] = []

    def forward(self, input_ids, **kwargs):
        self.shapes.append(tuple(input_ids.shape))
        too_many = input_ids.shape[0] > self.rows
        if too_many and not self.in_backward:
            raise self.error
        out = self.model(input_ids=input_ids, **kwargs)
        if too_many:
            out.logits = _FailingBackward.apply(out.logits, self.error)
        return out


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, error):
        ctx.error = error
        return logits.clone()

    @staticmethod
    def backward(ctx, grad):
        raise ctx.error


@pytest.fixture(scope="module")
def tiny():
    return TinyModel(initializer_range=0.2).load("cpu")


def pairs_of(tokenizer, prefix: str = "", n: int = 20):
    """n question/answer pairs of varied lengths (seeded)."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        question = f"Q: {rng.randint(0, 10 ** rng.randint(1, 6))}+{rng.randint(0, 99)}\nA:"
        out.append(encode_pair(tokenizer, prefix + question, f" {rng.randint(0, 10 ** rng.randint(1, 8))}\n"))
    return out


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OOM_LOG]


def halvings(what: str, sizes: list[int]) -> list[str]:
    return [f"{what}: out of memory at batch size {a}; retrying at batch size {b} (numbers are unchanged)"
            for a, b in zip(sizes, sizes[1:])]


def test_is_out_of_memory_knows_torch_s_error_and_the_words_of_other_backends():
    assert is_out_of_memory(torch.OutOfMemoryError("anything"))
    assert is_out_of_memory(RuntimeError(MESSAGE))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"))
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not a device's error


# ---- scoring ------------------------------------------------------------------------------------------------------
def test_a_scoring_batch_that_runs_out_is_retried_smaller_with_the_same_scores(tiny, caplog):
    """Bitwise equal to the run that fitted at batch_size 16: a retried pair keeps its batch's padded width.
    Against a run configured at the smaller size the scores agree only to float rounding (~5e-6 here): that run pads
    each pair to the width of a different, smaller batch, and attention sums over the padded width (masked keys add
    exact zeros, but the sums are blocked and vectorised differently for another length)."""
    model, tokenizer = tiny
    pairs = pairs_of(tokenizer)
    assert {len(p.context) + len(p.answer) for p in pairs} == set(range(12, 23))  # so batches differ in width
    fitted = score_pairs(model, tokenizer, pairs, batch_size=16, desc=None)
    device = SmallDevice(model, rows=3)
    with caplog.at_level(logging.INFO):
        retried = score_pairs(device, tokenizer, pairs, batch_size=16, desc=None)
    assert retried == fitted
    assert warnings(caplog) == halvings("scoring", [16, 8, 4, 2])  # once per new size, naming the work
    assert [rows for rows, _ in device.shapes[:3]] == [16, 8, 4]
    assert max(rows for rows, _ in device.shapes[3:]) == 2  # the smaller size is kept for the rest of the work
    assert sum(rows for rows, _ in device.shapes[3:]) == len(pairs)  # each pair scored once after the retries
    configured_small = score_pairs(model, tokenizer, pairs, batch_size=2, desc=None)
    assert [s.logprob for s in retried] == pytest.approx([s.logprob for s in configured_small], abs=1e-5)
    assert [(s.greedy, s.n_tokens) for s in retried] == [(s.greedy, s.n_tokens) for s in configured_small]


def test_the_prefix_cache_path_is_retried_alike_and_progress_counts_each_pair_once(tiny, caplog):
    model, tokenizer = tiny
    pairs = pairs_of(tokenizer, prefix=DEMOS)
    shared = shared_prefix_length(pairs)
    fitted = score_pairs(model, tokenizer, pairs, batch_size=16, desc=None, reuse_prefix=True)
    device = SmallDevice(model, rows=5)
    with caplog.at_level(logging.INFO):
        retried = score_pairs(device, tokenizer, pairs, batch_size=16, desc="scoring add/question", reuse_prefix=True)
    assert retried == fitted
    longest = max(len(p.context) + len(p.answer) for p in pairs)
    assert device.shapes[0] == (1, shared)  # the prefix, once; then only what follows it, padded as at batch size 16
    assert [width for _, width in device.shapes[1:4]] == [longest - shared] * 3
    assert warnings(caplog) == halvings("scoring add/question", [16, 8, 4])
    reports = [r.getMessage() for r in caplog.records if r.name == "ntkeval.progress"]
    assert reports[0] == "scoring add/question: started (20 items)" and reports[-1].startswith(
        "scoring add/question: done in")
    assert [m.split(" (")[0] for m in reports[1:-1]] == [f"scoring add/question: {n}/20" for n in (5, 10, 15)]


def test_a_batch_of_one_that_does_not_fit_is_a_one_line_fault_naming_the_setting(tiny):
    model, tokenizer = tiny
    with pytest.raises(torch.OutOfMemoryError, match=r"^scoring: out of memory on a single item") as caught:
        score_pairs(SmallDevice(model, rows=0), tokenizer, pairs_of(tokenizer, n=4), batch_size=16, desc=None)
    fault = describe(caught.value, CONFIG)
    assert fault.line == (
        "out of device memory while scoring (CUDA out of memory. Tried to allocate 2.00 GiB.): even a batch of one "
        "does not fit, so lowering scorer.batch_size (now 16, halved on its own at each out-of-memory) cannot help; "
        "use a device with more memory, or model.dtype=bfloat16 (now float32; that changes the results, so run it as "
        "a new sweep)")
    assert fault.rerun is None  # rerunning the same sweep cannot help


def test_an_error_other_than_out_of_memory_is_not_retried(tiny, caplog):
    model, tokenizer = tiny
    device = SmallDevice(model, rows=3, error=RuntimeError("CUDA error: device-side assert triggered"))
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="device-side assert"):
        score_pairs(device, tokenizer, pairs_of(tokenizer), batch_size=16, desc=None)
    assert device.shapes[0][0] == 16 and len(device.shapes) == 1
    assert warnings(caplog) == []


# ---- entk gradients -----------------------------------------------------------------------------------------------
TEXTS = [(f"Q: {a}+{b}\nA:", f" {a + b}\n") for a, b in ((12, 7), (3, 40), (5, 5), (123, 9), (1, 1), (70, 29),
                                                         (8, 888), (41, 2), (6, 60), (99, 99))]


@pytest.fixture(scope="module")
def tiny_double():
    model, tokenizer = TinyModel(initializer_range=0.2).load("cpu")
    return model.double().eval(), tokenizer


def test_a_gradient_batch_that_runs_out_in_the_backward_pass_is_retried_and_counted_once(tiny_double, caplog):
    """The train mean adds each batch's gradient once it has run, so a batch that failed half way adds nothing: the
    retried mean equals (bitwise) the one computed at the size it shrank to, and to float rounding the one at 8."""
    model, tokenizer = tiny_double
    params = dict(model.named_parameters())
    at_8 = answer_gradients(model, tokenizer, TEXTS, params, mean=True, batch_size=8, desc=None)
    at_2 = answer_gradients(model, tokenizer, TEXTS, params, mean=True, batch_size=2, desc=None)
    device = SmallDevice(model, rows=2, in_backward=True)
    with caplog.at_level(logging.WARNING):
        mean, logps = answer_gradients(device, tokenizer, TEXTS, params, mean=True, batch_size=8, desc="gradients")
    assert warnings(caplog) == halvings("gradients", [8, 4, 2])
    assert [rows for rows, _ in device.shapes] == [8, 4, 2, 2, 2, 2, 2]
    assert np.array_equal(mean, at_2[0]) and logps == at_2[1]
    assert np.allclose(mean, at_8[0], rtol=1e-9, atol=1e-15) and logps == pytest.approx(at_8[1], abs=1e-10)
    assert np.abs(mean).max() > 1e-3


def test_a_text_whose_gradient_does_not_fit_alone_is_a_one_line_fault(tiny_double):
    model, tokenizer = tiny_double
    device = SmallDevice(model, rows=0, in_backward=True)
    with pytest.raises(torch.OutOfMemoryError, match=r"^entk test: out of memory on a single item"):
        answer_gradients(device, tokenizer, TEXTS[:3], dict(model.named_parameters()), desc="entk test")
    assert len(device.shapes) == 1  # per-text gradients run one text at a time: nothing smaller to try
    with pytest.raises(torch.OutOfMemoryError) as caught:
        answer_gradients(device, tokenizer, TEXTS, dict(model.named_parameters()), mean=True, desc=None)
    line = describe(caught.value, {"scorer": {"batch_size": 8}, "model": {"dtype": "bfloat16"}}).line
    assert line == ("out of device memory while computing gradients (CUDA out of memory. Tried to allocate 2.00 GiB.): "
                    "even a batch of one does not fit, so lowering scorer.batch_size (now 8, halved on its own at each "
                    "out-of-memory) cannot help; use a device with more memory")


def test_a_gradient_error_other_than_out_of_memory_is_not_retried(tiny_double, caplog):
    model, tokenizer = tiny_double
    device = SmallDevice(model, rows=2, error=RuntimeError("element 0 of tensors does not require grad"))
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="does not require grad"):
        answer_gradients(device, tokenizer, TEXTS, dict(model.named_parameters()), mean=True, desc=None)
    assert len(device.shapes) == 1 and warnings(caplog) == []
