"""Sample efficiency of the delta estimators of one cell: how the error and the standard error of each estimate
shrink with the number of samples per question, and how many samples each needs to detect the cell's delta.

The per-question samples are drawn once at the largest size; smaller sizes are random subsets of them, repeated,
so every estimator at every size sees the same completions. "Detect at confidence c" means: the delta is at least
z_c standard errors from zero with the right sign, z_c the two-sided normal quantile; an estimator needs the
fewest samples per question at which it does so in at least 80% of the repeats (its power).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ntkeval import estimators


@dataclass
class QuestionSamples:
    """One question's completions from the control and from the learner, each scored under both models."""
    correct_c: np.ndarray  # control's completions: 1 if correct
    lpl_c: np.ndarray      # ... their log p under the learner
    lpc_c: np.ndarray      # ... and under the control
    correct_l: np.ndarray  # learner's completions: 1 if correct
    lpl_l: np.ndarray
    lpc_l: np.ndarray

    @property
    def size(self) -> int:
        return min(self.correct_c.size, self.correct_l.size)


def _accuracy_difference(q: QuestionSamples, i) -> estimators.Estimate:
    return estimators.accuracy_difference(q.correct_l[i], q.correct_c[i])


def _importance(q: QuestionSamples, i) -> estimators.Estimate:
    return estimators.importance_sampled(q.correct_c[i], q.lpl_c[i], q.lpc_c[i])


def _mirror(q: QuestionSamples, i) -> estimators.Estimate:
    return estimators.mirror(q.correct_l[i], q.lpl_l[i], q.lpc_l[i])


def _balanced(q: QuestionSamples, i) -> estimators.Estimate:
    return estimators.balanced((q.correct_c[i], q.lpl_c[i], q.lpc_c[i]), (q.correct_l[i], q.lpl_l[i], q.lpc_l[i]))


ESTIMATORS = {"accuracy-difference": _accuracy_difference, "importance": _importance, "mirror": _mirror,
              "balanced": _balanced}


def z_value(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid; valid: a number in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def sizes(n_max: int) -> list[int]:
    """2, 4, 8, ... up to n_max (n_max included)."""
    out, n = [], 2
    while n < n_max:
        out.append(n)
        n *= 2
    return out + [n_max]


def curves(questions: list[QuestionSamples], reference: float, repeats: int = 50, seed: int = 0,
           confidence: float = 0.95) -> list[dict]:
    """Per estimator and sample size: mean estimate, RMSE against `reference`, mean standard error, and the
    fraction of repeats whose estimate is significantly non-zero with the reference's sign (power)."""
    n_max = min(q.size for q in questions)
    z, rng, rows = z_value(confidence), np.random.default_rng(seed), []
    for name, estimate in ESTIMATORS.items():
        for n in sizes(n_max):
            found = []
            for _ in range(repeats if n < n_max else 1):
                picks = [rng.choice(q.size, n, replace=False) if n < q.size else np.arange(q.size) for q in questions]
                found.append(estimators.mean_over_questions([estimate(q, i) for q, i in zip(questions, picks)]))
            values = np.array([e.value for e in found])
            rows.append({"estimator": name, "n": n, "mean": float(values.mean()),
                         "rmse": float(np.sqrt(((values - reference) ** 2).mean())),
                         "se": float(np.mean([e.se for e in found])),
                         "power": float(np.mean([abs(e.value) > z * e.se and e.value * reference > 0
                                                 for e in found]))})
    return rows


def samples_needed(rows: list[dict], power: float = 0.8) -> dict[str, int | None]:
    """Per estimator: the fewest samples per question at which at least `power` of the repeats detected the delta
    (significantly non-zero, with the reference's sign); None when no size measured did. Measured, not predicted
    from the standard error: an importance estimate whose weights are heavy-tailed reports a standard error far
    too small, and only its misses show it."""
    if not 0 < power <= 1:
        raise ValueError(f"power={power!r} is invalid; valid: a number in (0, 1]")
    out = {}
    for name in ESTIMATORS:
        hits = sorted(r["n"] for r in rows if r["estimator"] == name and r["power"] >= power)
        out[name] = hits[0] if hits else None
    return out
