"""Gradients of answer log-likelihoods at the model as loaded, for the predicted kernel (scorer=entk): per text, or
their mean per answer token (the full-batch gradient of the tuning loss), with respect to a fresh LoRA adapter or to
every weight, as exact vectors or through a seeded CountSketch that never builds a d x P matrix.

The answer tokens and their loss are the tuning's (training._collate: labels on answer tokens only, by the rule in
tokenization.py). The model runs in eval mode (no dropout): the tuning's dropout is 0 by default, and a gradient that
depended on a dropout draw would not be reproducible. The gradient adapter is added under GRADIENT_ADAPTER and
removed before returning (session_gradients), so no other role of the cell ever scores with it. A batch that runs
out of device memory is retried in smaller ones (oom.ShrinkingBatches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ntkeval.backends.base import GradientSpec
from ntkeval.backends.huggingface.oom import ShrinkingBatches
from ntkeval.backends.huggingface.teacher_forcing import with_progress
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_pair, pad_id
from ntkeval.backends.huggingface.training import _collate

GRADIENT_ADAPTER = "entk-gradients"  # a name no learner uses: the adapter lives only inside session_gradients
SKETCH_CHUNK = 1 << 22  # parameter entries hashed at a time: the sketch's memory is d + this, whatever P is


class CountSketch:
    """A random linear map R^P -> R^d (Charikar, Chen and Farach-Colton 2002): entry i of a parameter tensor goes to
    bucket h(i) with sign s(i), both uniform and drawn from a generator seeded by (seed, tensor name, chunk), so the
    same parameter always lands in the same bucket. For any x, y: E<Sx, Sy> = <x, y> (the cross terms cancel in
    expectation, since E s(i)s(j) = 0 for i != j) and E|Sx|^2 = |x|^2; the variance of <Sx, Sy> is at most
    2|x|^2|y|^2/d. Buckets and signs are drawn on the CPU, so a sketch is the same on every device."""

    def __init__(self, dim: int, seed: int):
        if dim < 1:
            raise ValueError(f"a sketch needs at least one bucket, got {dim}")
        self.dim, self.seed = int(dim), int(seed)

    def _draws(self, name: str, start: int, size: int) -> torch.Tensor:
        """r(i) uniform on [0, 2d): bucket h(i) = r mod d, sign s(i) = +1 if r < d else -1."""
        digest = hashlib.sha256(f"{self.seed}:{name}:{start}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        return torch.randint(0, 2 * self.dim, (size,), generator=generator, dtype=torch.int32)

    def add(self, out: torch.Tensor, name: str, values: torch.Tensor) -> None:
        """out += S(values) for the parameter tensor `name` (out: float64 of length dim, on the CPU). Each chunk is
        summed in the values' precision (float32 for a float32 model: ~4M / 2d terms a bucket) then in float64."""
        flat = values.detach().reshape(-1)
        dtype = torch.float64 if flat.dtype == torch.float64 else torch.float32
        signed = torch.zeros(2 * self.dim, dtype=torch.float64)  # [positive buckets, negative buckets]: no sign pass
        part = torch.zeros(2 * self.dim, dtype=dtype)
        for start in range(0, flat.numel(), SKETCH_CHUNK):
            chunk = flat[start:start + SKETCH_CHUNK].to("cpu", dtype)
            part.zero_().index_add_(0, self._draws(name, start, chunk.numel()), chunk)
            signed += part
        out += signed[:self.dim] - signed[self.dim:]

    def __call__(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        out = torch.zeros(self.dim, dtype=torch.float64)
        for name, values in named.items():
            self.add(out, name, values)
        return out


def _flatten(named: dict[str, torch.Tensor], sketch: CountSketch | None) -> torch.Tensor:
    if sketch is not None:
        return sketch(named)
    return torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in named.values()])


def answer_gradients(model, tokenizer, texts: list[tuple[str, str]], params: dict[str, torch.nn.Parameter],
                     sketch: CountSketch | None = None, mean: bool = False, batch_size: int = 8,
                     desc: str | None = "gradients") -> tuple[np.ndarray, list[float]]:
    """(vectors, log p per text). mean=False: row i is the gradient of log p(target_i | prompt_i) (summed over its
    answer tokens) with respect to `params`, shape [len(texts), dim]. mean=True: one row, the gradient of
    sum_i log p_i / sum_i (answer tokens of i), the tuning loss's objective over all texts as one batch, computed in
    batches of `batch_size` (the result does not depend on it, to float rounding). dim is the parameters' total size,
    or sketch.dim. Vectors are float64."""
    pairs = [encode_pair(tokenizer, prompt, target) for prompt, target in texts]
    pad = pad_id(tokenizer)
    rows, tokens, total = [], 0, None

    def compute(batch: list[int]) -> list[float]:
        nonlocal tokens, total
        vector, batch_logps, batch_tokens = _batch_gradient(model, [pairs[i] for i in batch], pad, params, sketch)
        # Added only once the batch has run: a batch that ran out of memory and is retried smaller counts once.
        if mean:
            total = vector if total is None else total + vector
            tokens += batch_tokens
        else:
            rows.append(vector)
        return batch_logps

    # A text's own gradient needs a backward pass of its own; a mean adds batches' gradients, so any batch size
    # (the retried ones too) gives the same sum, to float rounding.
    shrinking = ShrinkingBatches(batch_size if mean else 1, desc or "gradients")
    model.eval()
    with torch.enable_grad():
        logps = shrinking.run(list(range(len(pairs))), with_progress(compute, desc, len(pairs)) if desc else compute)
    if mean:
        return (total / tokens).numpy()[None, :], logps
    return torch.stack(rows).numpy(), logps


def _batch_gradient(model, pairs: list[EncodedPair], pad: int, params: dict[str, torch.nn.Parameter],
                    sketch: CountSketch | None) -> tuple[torch.Tensor, list[float], int]:
    """(the gradient of the batch's summed log p as a vector, each pair's log p, the batch's answer tokens)."""
    device = next(model.parameters()).device
    ids, mask, labels = _collate(pairs, pad, device)  # the tuning's own labels
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    if logits.dtype not in (torch.float32, torch.float64):  # as the tuning does: half precision upcast
        logits = logits.float()
    token_logp = -torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:],
                                                    ignore_index=-100, reduction="none")
    sequence_logp = token_logp.sum(dim=1)  # ignored positions contribute exactly 0
    names, tensors = list(params), list(params.values())
    grads = torch.autograd.grad(sequence_logp.sum(), tensors, allow_unused=True)
    named = {n: g if g is not None else torch.zeros_like(p) for n, g, p in zip(names, grads, tensors)}
    return _flatten(named, sketch), sequence_logp.detach().double().tolist(), int((labels[:, 1:] != -100).sum())


def _canonical(name: str) -> str:
    """A weight's name whether or not peft has wrapped its module (a sketch must hash the same weight alike)."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


@contextmanager
def gradient_parameters(session, spec: GradientSpec) -> Iterator[tuple[object, dict[str, torch.nn.Parameter]]]:
    """(model, the parameters to differentiate) for `spec` on an HFSession; everything is as it was afterwards.
    lora: a fresh adapter seeded as train_adapter seeds one (the global random state is restored after), removed on
    exit. full: every weight of the model with all adapters disabled, requires_grad restored on exit."""
    if spec.params == "lora":
        with torch.random.fork_rng():  # CPU and CUDA generators alike, as manual_seed seeds both
            torch.manual_seed(spec.seed)  # exactly train_adapter's initialisation for this seed
            model = session.new_adapter(GRADIENT_ADAPTER, spec.lora)
        try:
            yield model, {n: p for n, p in model.named_parameters() if p.requires_grad}
        finally:
            session.remove_adapter(GRADIENT_ADAPTER)
        return
    if spec.params != "full":
        raise ValueError(f"unknown gradient parameters {spec.params!r}; expected lora or full")
    with session.using(None) as model:
        flags = {n: p.requires_grad for n, p in model.named_parameters()}
        weights = {_canonical(n): p for n, p in model.named_parameters() if "lora_" not in n}
        try:
            for n, p in model.named_parameters():
                p.requires_grad_("lora_" not in n)
            yield model, weights
        finally:
            for n, p in model.named_parameters():
                p.requires_grad_(flags[n])


def session_gradients(session, texts: list[tuple[str, str]], spec: GradientSpec, mean: bool = False,
                      batch_size: int = 8, desc: str | None = "gradients") -> tuple[np.ndarray, list[float]]:
    """answer_gradients on an HFSession's model for `spec` (see gradient_parameters)."""
    sketch = CountSketch(spec.projection, spec.seed) if spec.projection is not None else None
    with gradient_parameters(session, spec) as (model, params):
        return answer_gradients(model, session.tokenizer, texts, params, sketch, mean, batch_size, desc)
