"""Kernel values from per-question probabilities: the paired mean difference and an interval that covers it.

A kernel entry is delta = mean over test questions of p_learner - p_control. Its interval must hold at the sizes
people use (8 to 64 questions), where the per-question differences are often sparse (most ~0, a few large) and
skewed. A percentile bootstrap or a t interval collapses to a point when a sample happens to show no gain at all,
which at 16 questions and gains on 10% of them happens in 0.9^16 = 18.5% of samples, so they cannot cover.

The default method ("bounded") uses what is known: differences of probabilities lie in [-1, 1]. It is the bound of
Gaffke (2005), whose small-sample coverage Learned-Miller and Thomas, and Phan, Thomas and Learned-Miller (ICML
2021, arXiv:2106.03163) study: with D ~ Dirichlet(1, ..., 1) over the n observations plus one pseudo-observation
at the bound, the upper limit is the (1 - a/2) quantile of sum_i D_i x_i + D_(n+1) * 1 and the lower limit the
a/2 quantile of sum_i D_i x_i + D_(n+1) * (-1) (Monte Carlo over `resamples` draws of D). A sample of n zeros
thus gets +-(1 - (a/2)^(1/n)), +-0.21 at n = 16, and no interval that covers every distribution on [-1, 1] can
give that sample less: a gain of +1 on one question in five goes unseen in 16 questions 2.8% of the times. The
price is width wherever the sample is small (0.43 at 16 questions against 0.14-0.16 for a bootstrap, 0.13 against
0.07 at 64). launch/coverage.py prints the coverage and width of every method; tests/test_statistics_calibration.py
checks them and the two-point law the bound is tight against. Values outside the bounds (e.g. importance-sampled
per-question estimates, which are not probabilities) fall back to BCa, which under-covers sparse gains at small
n, as the coverage table shows.

`pooled_delta` pools S seeds (each its own questions and adaptation) into one entry whose interval covers seed
and question variation together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Sequence

import numpy as np

METHODS = ("bounded", "bca", "t", "percentile", "studentized")
PROBABILITY_DIFFERENCES = (-1.0, 1.0)


@dataclass(frozen=True)
class Delta:
    n: int
    delta: float    # mean over questions of p_learner - p_control
    ci_low: float   # interval at `level` (95% by default) for the mean, by `method`
    ci_high: float
    method: str = "bounded"


def paired_delta(p_learner: Sequence[float], p_control: Sequence[float], seed: int = 0, resamples: int = 2000,
                 level: float = 0.95, method: str = "bounded",
                 bounds: tuple[float, float] | None = PROBABILITY_DIFFERENCES) -> Delta:
    """Mean paired difference and its interval; questions are the unit (each pair stays together).

    `bounds` is the range the differences can take (probabilities: [-1, 1]); None, or a difference outside it,
    means no range is known and the bounded method falls back to BCa.
    """
    a = np.asarray(p_learner, dtype=np.float64)
    b = np.asarray(p_control, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal, non-empty lists of probabilities, got {a.shape} and {b.shape}")
    return mean_interval(a - b, seed=seed, resamples=resamples, level=level, method=method, bounds=bounds)


def mean_interval(values: Sequence[float], seed: int = 0, resamples: int = 2000, level: float = 0.95,
                  method: str = "bounded", bounds: tuple[float, float] | None = PROBABILITY_DIFFERENCES) -> Delta:
    """The mean of one sample of differences with an interval by `method` (one of METHODS)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"need a non-empty list of finite differences, got shape {x.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; choose one of {METHODS}")
    if method == "bounded" and not _within(x, bounds):
        method = "bca"
    rng = np.random.default_rng(seed)
    low, high = _INTERVALS[method](x, level, rng, resamples, bounds)
    return Delta(n=int(x.size), delta=float(x.mean()), ci_low=float(low), ci_high=float(high), method=method)


def _within(x: np.ndarray, bounds: tuple[float, float] | None) -> bool:
    return bounds is not None and bool(bounds[0] <= x.min() and x.max() <= bounds[1])


def _bounded(x, level, rng, draws, bounds) -> tuple[float, float]:
    """Gaffke's bound: Dirichlet weights over the sample plus one pseudo-observation at the unfavourable bound."""
    w = rng.dirichlet(np.ones(x.size + 1), size=draws)
    body = w[:, :-1] @ x
    tail = (1.0 - level) / 2.0
    low = float(np.quantile(body + w[:, -1] * bounds[0], tail))
    high = float(np.quantile(body + w[:, -1] * bounds[1], 1.0 - tail))
    # the weights sum to 1 only up to rounding: keep the limits inside the bounds and around the mean
    return max(bounds[0], min(low, float(x.mean()))), min(bounds[1], max(high, float(x.mean())))


def _percentile(x, level, rng, resamples, bounds) -> tuple[float, float]:
    means = _resampled_means(x, rng, resamples)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _bca(x, level, rng, resamples, bounds) -> tuple[float, float]:
    """Bias-corrected and accelerated percentile bootstrap (Efron 1987), acceleration from the jackknife."""
    means = _resampled_means(x, rng, resamples)
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    below = (means < x.mean()).mean() + 0.5 * (means == x.mean()).mean()
    z0 = NormalDist().inv_cdf(min(max(below, 1.0 / (resamples + 1)), 1.0 - 1.0 / (resamples + 1)))
    jack = (x.sum() - x) / (x.size - 1) if x.size > 1 else x.copy()
    d = jack.mean() - jack
    denominator = 6.0 * float((d ** 2).sum()) ** 1.5
    accel = float((d ** 3).sum()) / denominator if denominator > 0 else 0.0
    tail = (1.0 - level) / 2.0
    quantiles = []
    for z in (NormalDist().inv_cdf(tail), NormalDist().inv_cdf(1.0 - tail)):
        quantiles.append(NormalDist().cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z))))
    return float(np.quantile(means, quantiles[0])), float(np.quantile(means, quantiles[1]))


def _t(x, level, rng, resamples, bounds) -> tuple[float, float]:
    if x.size < 2:
        return float("nan"), float("nan")
    half = t_quantile(level, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def _studentized(x, level, rng, resamples, bounds) -> tuple[float, float]:
    """Bootstrap-t: quantiles of the resampled t statistic; resamples with no spread carry no t and are dropped."""
    if x.size < 2:
        return float("nan"), float("nan")
    se = x.std(ddof=1) / math.sqrt(x.size)
    if se == 0:
        return float(x[0]), float(x[0])
    sample = x[rng.integers(0, x.size, size=(resamples, x.size))]
    se_star = sample.std(axis=1, ddof=1) / math.sqrt(x.size)
    keep = se_star > 0
    t_star = (sample.mean(axis=1)[keep] - x.mean()) / se_star[keep]
    tail = (1.0 - level) / 2.0
    low_t, high_t = np.quantile(t_star, [tail, 1.0 - tail])
    return float(x.mean() - high_t * se), float(x.mean() - low_t * se)


def _resampled_means(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    return x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)


_INTERVALS = {"bounded": _bounded, "bca": _bca, "t": _t, "percentile": _percentile, "studentized": _studentized}


def pooled_delta(diffs_by_seed: list[Sequence[float]], seed: int = 0, level: float = 0.95, resamples: int = 2000,
                 bounds: tuple[float, float] | None = PROBABILITY_DIFFERENCES) -> Delta:
    """One kernel entry from S seeds, each a list of per-question differences from its own questions and adaptation.

    delta is the mean of the seed means (each seed one replicate). The interval is the union of two intervals:
    a t interval on the S seed means with S - 1 degrees of freedom, which carries the seed-to-seed variation
    (adaptation and question draw) but collapses when every seed shows the same value (e.g. no gain anywhere),
    and the bounded interval of all questions taken as one sample, which covers what no question showed but not
    the seed variation. The union covers whenever either does; a bootstrap over 2 to 5 seeds cannot (it
    under-covers, see launch/coverage.py). With one seed only the bounded interval is left: seed variation is
    then unmeasured. Seeds with unequal question counts are weighted equally by rescaling their questions.
    """
    samples = [np.asarray(d, dtype=np.float64) for d in diffs_by_seed]
    if not samples or any(s.ndim != 1 or s.size == 0 for s in samples):
        raise ValueError("need at least one seed, each with a non-empty list of per-question differences")
    seed_means = np.array([s.mean() for s in samples])
    delta = float(seed_means.mean())
    total = sum(s.size for s in samples)
    # rescale so that the plain mean over all questions is the mean of seed means (factor 1 for equal counts)
    scale = np.concatenate([np.full(s.size, total / (len(samples) * s.size)) for s in samples])
    pooled = np.concatenate(samples) * scale
    wide = None if bounds is None else (bounds[0] * scale.max(), bounds[1] * scale.max())
    questions = mean_interval(pooled, seed=seed, resamples=resamples, level=level, bounds=wide)
    if len(samples) == 1:
        return Delta(total, delta, questions.ci_low, questions.ci_high, f"one seed: {questions.method}")
    half = t_quantile(level, len(samples) - 1) * seed_means.std(ddof=1) / math.sqrt(len(samples))
    low, high = min(delta - half, questions.ci_low), max(delta + half, questions.ci_high)
    return Delta(total, delta, float(low), float(high), f"t on {len(samples)} seed means | {questions.method}")


@lru_cache(maxsize=256)
def t_quantile(level: float, df: float) -> float:
    """Two-sided Student-t quantile: P(|T_df| <= q) = level. Fractional df round down (wider, so conservative)."""
    nu = max(1, int(math.floor(df)))
    if nu > 2000:  # the normal quantile is within 1e-3 of t's here; the series below would be needlessly long
        return NormalDist().inv_cdf(0.5 + level / 2.0)
    low, high = 0.0, 1.0
    while _t_central(high, nu) < level:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if _t_central(mid, nu) < level else (low, mid)
    return (low + high) / 2.0


def _t_central(t: float, nu: int) -> float:
    """P(|T| <= t) for Student's t with integer nu, by the finite series of Abramowitz and Stegun 26.7.3-4."""
    theta = math.atan(t / math.sqrt(nu))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if nu % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, nu // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if nu == 1:
        return 2.0 * theta / math.pi
    term = math.cos(theta)
    total = term
    for k in range(1, (nu - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * total)
