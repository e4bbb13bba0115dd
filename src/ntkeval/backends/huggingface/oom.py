"""Batches that shrink when the accelerator runs out of memory (lm-evaluation-harness's auto batch size, done lazily):
a batch that fails with an out-of-memory error is retried at half the size, the smaller size is kept for the rest of
the work, and the change is logged once per size. Each item's numbers are computed from the same inputs whatever
batch it shares, so retrying changes no result; only an item that cannot run even alone fails, naming the size.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

# torch >= 2.5 raises torch.OutOfMemoryError on every device; older ones (pyproject allows 2.2) have only CUDA's
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

Item = TypeVar("Item")
Result = TypeVar("Result")


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA, and the generic one of torch >= 2.5), or the RuntimeError of a backend that
    words it only in text (MPS, ROCm builds: "out of memory")."""
    if isinstance(error, OUT_OF_MEMORY):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_accelerator_memory() -> None:
    """Drop what the failed batch left: its tensors are unreachable once the exception is gone."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ShrinkingBatches:
    """Run consecutive batches of at most `size` items through `compute`, halving `size` on out-of-memory.

    One object per stage of work (scoring one role, drawing one role's samples): a size that ran out of memory once
    is not tried again for the rest of that work. `what` names the work in the log line."""

    def __init__(self, size: int, what: str):
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        self.size = size
        self.what = what
        self.retries = 0  # how many batches were retried smaller (tests and benchmarks read it)

    def run(self, items: Sequence[Item], compute: Callable[[list[Item]], list[Result]]) -> list[Result]:
        """compute(batch) -> one result per item, over `items` in order; the results in the same order."""
        results: list[Result] = []
        start = 0
        while start < len(items):
            batch = list(items[start:start + self.size])
            try:
                out = compute(batch)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                self._shrink(len(batch), error)
                out = None
            if out is None:  # freed here, once the exception (and the failed batch's frames it holds) is gone
                free_accelerator_memory()
                continue
            if len(out) != len(batch):
                raise RuntimeError(f"{self.what}: a batch of {len(batch)} gave {len(out)} results")
            results.extend(out)
            start += len(batch)
        return results

    def _shrink(self, failed: int, error: BaseException) -> None:
        if failed <= 1:
            raise OUT_OF_MEMORY(
                f"{self.what}: out of memory on a single item (batch size 1): the model does not fit with this "
                f"input; use a smaller model, a shorter input or a GPU with more memory ({error})") from error
        self.size = max(1, failed // 2)
        self.retries += 1
        log.warning("%s: out of memory at batch size %d; retrying at batch size %d (numbers are unchanged)",
                    self.what, failed, self.size)
