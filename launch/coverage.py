"""Coverage of kernel-entry intervals, by simulation: how often each method's 95% interval holds the true mean.

    python launch/coverage.py [--reps 1000] [--seed 0] [--resamples 1000]

Per-question differences p_learner - p_control are drawn from five shapes whose mean is known exactly, at 8, 16,
32 and 64 questions; every method of ntkeval.stats.intervals.mean_interval is applied to each sample. A second table pools
S = 2, 3, 5 seeds of 16 questions, each seed with its own planted offset (its adaptation went better or worse):
ntkeval.stats.intervals.pooled_delta against its two halves alone and a two-stage bootstrap (resample seeds, then
questions within them). Coverage is printed with its Monte Carlo standard error; widths are means.
tests/test_statistics_calibration.py loads SHAPES and SEEDED from here, so the tests check the shapes tabled.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable

import numpy as np

from ntkeval.stats.intervals import METHODS, mean_interval, pooled_delta, t_quantile

Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _sparse(rate: float) -> Sampler:
    """Most questions unchanged (exactly 0), a fraction `rate` gaining U(0.2, 0.9): in-context examples that
    unlock a few questions and leave the rest alone."""
    return lambda rng, size: (rng.random(size) < rate) * rng.uniform(0.2, 0.9, size)


# name -> (sampler, true mean). Every draw lies in [-1, 1]; clipping the normal at +-1 (6 sd away) moves its
# mean by less than 1e-9.
SHAPES: dict[str, tuple[Sampler, float]] = {
    "dense normal": (lambda rng, size: np.clip(rng.normal(0.05, 0.15, size), -1.0, 1.0), 0.05),
    "skewed": (lambda rng, size: 0.9 * rng.beta(0.3, 2.7, size) - 0.02, 0.9 * 0.1 - 0.02),
    "sparse 10%": (_sparse(0.10), 0.10 * 0.55),
    "sparse 25%": (_sparse(0.25), 0.25 * 0.55),
    "zero": (lambda rng, size: np.zeros(size), 0.0),
}


def _seeded_sparse(rate: float) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """Each seed's adaptation unlocks a different fraction rate * (1 + U(-0.8, 0.8)) of questions (mean: rate)."""
    def draw(rng, seeds, n):
        rates = rate * (1.0 + rng.uniform(-0.8, 0.8, (seeds, 1)))
        return (rng.random((seeds, n)) < rates) * rng.uniform(0.2, 0.9, (seeds, n))
    return draw


def _seeded_shift(shape: str, tau: float) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """A shape plus a per-seed offset N(0, tau) shared by that seed's questions. Clipping to [-1, 1] keeps them
    differences of probabilities; it touches fewer than 1 in 10^4 draws here and moves the mean by under 1e-5."""
    sampler = SHAPES[shape][0]
    return lambda rng, seeds, n: np.clip(sampler(rng, (seeds, n)) + rng.normal(0.0, tau, (seeds, 1)), -1.0, 1.0)


# name -> (draw(rng, seeds, n) -> seeds x n differences, true mean over seeds and questions)
SEEDED: dict[str, tuple[Callable[[np.random.Generator, int, int], np.ndarray], float]] = {
    "dense, seed sd 0.05": (_seeded_shift("dense normal", 0.05), 0.05),
    "dense, seed sd 0.15": (_seeded_shift("dense normal", 0.15), 0.05),
    "skewed, seed sd 0.05": (_seeded_shift("skewed", 0.05), 0.07),
    "sparse 10%, rate by seed": (_seeded_sparse(0.10), 0.10 * 0.55),
    "sparse 25%, rate by seed": (_seeded_sparse(0.25), 0.25 * 0.55),
    "zero": (lambda rng, seeds, n: np.zeros((seeds, n)), 0.0),
}


def coverage(interval: Callable[[np.ndarray, int], tuple[float, float]], draw: Callable[[np.random.Generator],
             np.ndarray], truth: float, reps: int, seed: int) -> tuple[float, float]:
    """(fraction of `reps` simulated samples whose interval holds `truth`, mean width)."""
    rng = np.random.default_rng(seed)
    hits, width = 0, 0.0
    for rep in range(reps):
        low, high = interval(draw(rng), rep)
        hits += bool(low - 1e-12 <= truth <= high + 1e-12)
        width += high - low
    return hits / reps, width / reps


def method_interval(method: str, resamples: int) -> Callable[[np.ndarray, int], tuple[float, float]]:
    def interval(x, rep):
        d = mean_interval(x, seed=rep, resamples=resamples, method=method)
        return d.ci_low, d.ci_high
    return interval


def pooled_interval(resamples: int) -> Callable[[np.ndarray, int], tuple[float, float]]:
    def interval(x, rep):
        d = pooled_delta(list(x), seed=rep, resamples=resamples)
        return d.ci_low, d.ci_high
    return interval


def t_on_seed_means(x: np.ndarray, rep: int) -> tuple[float, float]:
    means = x.mean(axis=1)
    half = t_quantile(0.95, means.size - 1) * means.std(ddof=1) / math.sqrt(means.size)
    return means.mean() - half, means.mean() + half


def bounded_on_all_questions(resamples: int) -> Callable[[np.ndarray, int], tuple[float, float]]:
    def interval(x, rep):
        d = mean_interval(x.ravel(), seed=rep, resamples=resamples)
        return d.ci_low, d.ci_high
    return interval


def two_stage_bootstrap(resamples: int) -> Callable[[np.ndarray, int], tuple[float, float]]:
    """Resample seeds, then questions within each drawn seed; percentile interval of the pooled mean."""
    def interval(x, rep):
        rng = np.random.default_rng(rep)
        seeds, n = x.shape
        pick = rng.integers(0, seeds, (resamples, seeds))
        questions = rng.integers(0, n, (resamples, seeds, n))
        means = x[pick[:, :, None], questions].mean(axis=(1, 2))
        return tuple(np.quantile(means, [0.025, 0.975]))
    return interval


def question_table(reps: int, seed: int, resamples: int, sizes=(8, 16, 32, 64)) -> list[str]:
    lines = [f"{'method':<12}{'n':>4}  " + "".join(f"{name:>22}" for name in SHAPES)]
    for method in METHODS:
        for n in sizes:
            cells = []
            for k, (name, (sampler, truth)) in enumerate(SHAPES.items()):
                cov, width = coverage(method_interval(method, resamples), lambda rng: sampler(rng, n), truth,
                                      reps, seed + 1000 * k + n)
                cells.append(f"{cov:.3f} w{width:.3f}".rjust(22))
            lines.append(f"{method:<12}{n:>4}  " + "".join(cells))
    return lines


def seed_table(reps: int, seed: int, resamples: int, seed_counts=(2, 3, 5), n: int = 16) -> list[str]:
    methods = {"pooled_delta": pooled_interval(resamples), "t seed means": t_on_seed_means,
               "bounded only": bounded_on_all_questions(resamples), "2-stage boot": two_stage_bootstrap(resamples)}
    lines = [f"{'method':<14}{'S':>3}  " + "".join(f"{name:>26}" for name in SEEDED)]
    for name, interval in methods.items():
        for seeds in seed_counts:
            cells = []
            for k, (shape, (draw, truth)) in enumerate(SEEDED.items()):
                cov, width = coverage(interval, lambda rng: draw(rng, seeds, n), truth, reps, seed + 1000 * k + seeds)
                cells.append(f"{cov:.3f} w{width:.3f}".rjust(26))
            lines.append(f"{name:<14}{seeds:>3}  " + "".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated samples per cell (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples / Dirichlet draws")
    args = parser.parse_args(argv)
    se = math.sqrt(0.95 * 0.05 / args.reps)
    start = time.perf_counter()
    print(f"Coverage of 95% intervals for the mean difference ({args.reps} samples per cell; Monte Carlo SE of a "
          f"coverage near 0.95: {se:.3f}); each cell: coverage, then mean width (w)\n")
    print("\n".join(question_table(args.reps, args.seed, args.resamples)))
    print("\nSeed-pooled entries: S seeds x 16 questions, each seed its own planted offset\n")
    print("\n".join(seed_table(args.reps, args.seed, args.resamples)))
    print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
