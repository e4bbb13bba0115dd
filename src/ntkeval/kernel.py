"""Kernel values from per-question probabilities: the paired mean difference and its bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Delta:
    n: int
    delta: float    # mean over questions of p_learner - p_control
    ci_low: float   # 95% paired-bootstrap percentile interval over questions
    ci_high: float


def paired_delta(p_learner: list[float], p_control: list[float], seed: int = 0, resamples: int = 2000,
                 level: float = 0.95) -> Delta:
    """Mean paired difference with a percentile bootstrap that resamples questions (pairs stay together)."""
    a = np.asarray(p_learner, dtype=np.float64)
    b = np.asarray(p_control, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal, non-empty lists of probabilities, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(resamples, diff.size))
    means = diff[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Delta(n=int(diff.size), delta=float(diff.mean()), ci_low=float(low), ci_high=float(high))
