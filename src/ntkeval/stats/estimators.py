"""Estimators of delta = p_learner(correct) - p_control(correct) for one question from sampled completions, each
with the variance of the estimate (its standard error squared), and their average over questions.

    accuracy_difference   samples from both models; mean(correct under learner) - mean(correct under control)
    importance_sampled    samples from the control; mean of 1[correct] * (w - 1), w = p_learner(y) / p_control(y)
    mirror                samples from the learner; mean of 1[correct] * (1 - 1/w)
    balanced              both sample sets pooled with the balance heuristic (multiple importance sampling): each
                          sample counts 1[correct] * 2 (w - 1) / (w + 1) = 2 tanh(log w / 2), which is bounded, so no
                          sample with a huge weight dominates; unbiased because the two sets have equal size.

All three importance estimators are unbiased when the samples are drawn from the models themselves (temperature 1,
no top-p) and w is the ratio of the probabilities of exactly the sampled token sequences (scorer=ntk takes the
sampler's own from the log p recorded while drawing, ntkeval.backends.huggingface.sampling). Weights are formed from log-probabilities
(exp of a difference), never from products of small probabilities. The importance estimate sees only the control's
correct samples: with at most one of them for a question it is zero or one large weight, and its standard error
says nothing (scorer=ntk counts such questions as sparse_control).

ESTIMATORS at the end declares each estimator once (the sample sets it needs, its bounds, its closed form) for
scorer=ntk and ntkeval.stats.efficiency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float     # the estimate of p_learner(correct) - p_control(correct) (or of one accuracy)
    variance: float  # the variance of that estimate over sampling (its standard error squared)
    n: int           # samples it used (per model)

    @property
    def se(self) -> float:
        return math.sqrt(self.variance)


def _mean_and_variance(values: np.ndarray) -> tuple[float, float]:
    """The mean of i.i.d. draws and the unbiased estimate of its variance."""
    if values.size < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {values.size}")
    return float(values.mean()), float(values.var(ddof=1) / values.size)


def _arrays(*seqs: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=np.float64) for s in seqs]
    if any(a.shape != arrays[0].shape or a.ndim != 1 for a in arrays):
        raise ValueError(f"need equal-length lists, got shapes {[a.shape for a in arrays]}")
    return arrays


def accuracy(correct: Sequence[float]) -> Estimate:
    """The fraction of correct samples."""
    (c,) = _arrays(correct)
    mean, var = _mean_and_variance(c)
    return Estimate(mean, var, c.size)


def accuracy_difference(correct_learner: Sequence[float], correct_control: Sequence[float]) -> Estimate:
    """The paper's baseline: the difference of two independent sample accuracies."""
    a, b = accuracy(correct_learner), accuracy(correct_control)
    return Estimate(a.value - b.value, a.variance + b.variance, min(a.n, b.n))


def importance_sampled(correct: Sequence[float], logp_learner: Sequence[float],
                       logp_control: Sequence[float]) -> Estimate:
    """Samples drawn from the control, each scored under both models: mean of 1[correct] (w - 1)."""
    c, lp_l, lp_c = _arrays(correct, logp_learner, logp_control)
    mean, var = _mean_and_variance(c * np.expm1(lp_l - lp_c))
    return Estimate(mean, var, c.size)


def mirror(correct: Sequence[float], logp_learner: Sequence[float], logp_control: Sequence[float]) -> Estimate:
    """Samples drawn from the learner, each scored under both models: mean of 1[correct] (1 - 1/w)."""
    c, lp_l, lp_c = _arrays(correct, logp_learner, logp_control)
    mean, var = _mean_and_variance(-c * np.expm1(lp_c - lp_l))
    return Estimate(mean, var, c.size)


def balanced(control_samples: tuple[Sequence[float], Sequence[float], Sequence[float]],
             learner_samples: tuple[Sequence[float], Sequence[float], Sequence[float]]) -> Estimate:
    """Both sample sets, each given as (correct, logp_learner, logp_control), combined by the balance heuristic.
    The sets must be the same size: the mixture they stand for is then half control, half learner."""
    parts = []
    for correct, lp_l, lp_c in (control_samples, learner_samples):
        c, a, b = _arrays(correct, lp_l, lp_c)
        parts.append(_mean_and_variance(2.0 * c * np.tanh((a - b) / 2.0)) + (c.size,))
    (m1, v1, n1), (m2, v2, n2) = parts
    if n1 != n2:
        raise ValueError(f"the balanced estimate needs as many learner samples as control samples, got {n2} and {n1}")
    return Estimate((m1 + m2) / 2.0, (v1 + v2) / 4.0, n1)


def mean_over_questions(estimates: Sequence[Estimate]) -> Estimate:
    """The average over questions, with the sampling variance of that average (questions sampled independently)."""
    if not estimates:
        raise ValueError("no estimates to average")
    k = len(estimates)
    return Estimate(sum(e.value for e in estimates) / k, sum(e.variance for e in estimates) / k ** 2,
                    min(e.n for e in estimates))


# ---- the registry: each estimator declared once, for scorer=ntk (per-question estimates from samples) and
# ntkeval.stats.efficiency (its closed form on canonical completions); neither branches on names.
Samples = tuple[Sequence[float], Sequence[float], Sequence[float]]  # (correct, logp_learner, logp_control)


@dataclass(frozen=True)
class Estimator:
    name: str
    samples: str      # whose completions it needs: "control", "learner" or "both"
    weighted: bool    # whether it needs each completion scored under both models (importance weights)
    bounds: tuple[float, float] | None  # the range of a per-question estimate, for the interval over questions
    estimate: Callable[[Samples | None, Samples | None], Estimate]  # (control's set, learner's set) -> one question
    coefficients: Callable[[float], tuple[float, float]]  # log w -> (alpha, beta): what one canonical completion
    #   of the control and of the learner adds to the per-question estimate, times n (ntkeval.stats.efficiency)

    @property
    def from_control(self) -> bool:
        return self.samples in ("control", "both")

    @property
    def from_learner(self) -> bool:
        return self.samples in ("learner", "both")


def _half_tanh(log_w: float) -> tuple[float, float]:
    t = math.tanh(log_w / 2)  # balanced: each set's term 2 tanh(log w / 2), the two sets averaged
    return t, t


# Weights from log w: w - 1 and 1 - 1/w overflow to infinity beyond |log w| = 700 rather than raising.
ESTIMATORS: tuple[Estimator, ...] = (
    Estimator("accuracy-difference", "both", False, None, lambda c, lr: accuracy_difference(lr[0], c[0]),
              lambda log_w: (-1.0, 1.0)),
    Estimator("importance", "control", True, None, lambda c, lr: importance_sampled(*c),
              lambda log_w: (math.expm1(log_w) if log_w < 700 else math.inf, 0.0)),
    Estimator("mirror", "learner", True, None, lambda c, lr: mirror(*lr),
              lambda log_w: (0.0, -math.expm1(-log_w) if log_w > -700 else -math.inf)),
    # each balanced term is 1[correct] 2 tanh(log w / 2) in (-2, 2), so its per-question estimate is too; importance
    # terms w - 1 and mirror terms 1 - 1/w are unbounded on one side (their intervals are BCa)
    Estimator("balanced", "both", True, (-2.0, 2.0), balanced, _half_tanh),
)
BY_NAME = {e.name: e for e in ESTIMATORS}
