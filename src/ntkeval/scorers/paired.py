"""The kernel entry of scorers whose per-question values are probabilities (majority, verify, process): the mean
of learner - control over questions, its standard error and its bounded interval (ntkeval.stats.intervals)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ntkeval.stats.intervals import paired_delta


def paired_entry(learner: Sequence[float], control: Sequence[float], seed: int) -> dict:
    """{"delta", "se", "ci_low", "ci_high"} of per-question probabilities (differences bounded in [-1, 1]); se is
    the spread of the differences over questions (nan with one question)."""
    diffs = [a - b for a, b in zip(learner, control, strict=True)]
    q = len(diffs)
    mean = sum(diffs) / q
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (q - 1) / q) if q > 1 else float("nan")
    ci = paired_delta(list(learner), list(control), seed=seed)
    return {"delta": mean, "se": se, "ci_low": ci.ci_low, "ci_high": ci.ci_high}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
