"""Sample efficiency of the delta estimators of one cell, on one target: how the error of each estimate shrinks with
the number of samples per question, and how many samples each needs to detect the cell's delta.

The target event is the exact scorer's: a completion is "correct" when its token ids are exactly the canonical
answer's tokens followed by the delimiter. The exact scorer computes p_control and p_learner of that event by
teacher forcing, so the reference delta is exact, and every estimator sees a completion only through two numbers:
whether it is canonical, and, for canonical ones, the weight w = p_learner(canonical) / p_control(canonical), also
exact. Drawing a completion at temperature 1 and top-p 1 gives the canonical one with probability exactly
p_model(canonical tokens) (ntkeval.backends.huggingface.sampling: a completion ends only at its first stop string, at EOS or at
max_new_tokens), so the number of canonical completions among n independent draws is Binomial(n, p), and n draws
from each model are simulated exactly by two binomial counts per question. That makes hundreds of independent
replications at every sample size cheap: no subsets of one draw, no shared realization between sizes.

Every estimator is then linear in the counts (k_c canonical among n control draws, k_l among n learner draws):

    estimate = (alpha k_c + beta k_l) / n
    variance = (alpha^2 k_c (n - k_c) + beta^2 k_l (n - k_l)) / (n^2 (n - 1))   (what ntkeval.stats.estimators reports)

    (declared once, with the per-sample estimators, in ntkeval.stats.estimators.ESTIMATORS)
    accuracy-difference  alpha = -1,              beta = 1
    importance           alpha = w - 1,           beta = 0       (samples from the control only)
    mirror               alpha = 0,               beta = 1 - 1/w (samples from the learner only)
    balanced             alpha = beta = tanh(log w / 2)

each unbiased: alpha p_c + beta p_l = p_l - p_c. "Detected" means the estimate over questions is more than z_c
reported standard errors from zero with the sign of the exact delta (z_c the two-sided normal quantile at
confidence c); power is the fraction of replications that detect it, with a Wilson interval; an estimator needs the
fewest samples per question (and model) at which its power reaches the target, with an interval from the sizes
where the Wilson interval of the power could and must reach it. Power alone rewards an over-confident estimator (one
whose rare, huge weights almost never show up, so its reported standard error is small and its typical estimate
off), so each size also reports coverage: how often estimate +- z_c reported standard errors contains the exact
delta (nominal: c). The estimators are unbiased, so their RMSE is their exact standard deviation (`sd_exact`, in
closed form); the simulated RMSE approaches it, slowly where the tails are heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ntkeval.stats.estimators import ESTIMATORS as REGISTRY

ESTIMATORS = tuple(e.name for e in REGISTRY)  # every estimator of the registry, in its order


@dataclass(frozen=True)
class CanonicalQuestion:
    """One question: log p of its canonical answer tokens + delimiter under each model, teacher-forced."""
    logp_control: float
    logp_learner: float

    @property
    def p_control(self) -> float:
        return math.exp(self.logp_control)

    @property
    def p_learner(self) -> float:
        return math.exp(self.logp_learner)


def coefficients(q: CanonicalQuestion) -> dict[str, tuple[float, float]]:
    """Per estimator: (alpha, beta), what one canonical completion of the control and of the learner adds to the
    per-question estimate (times n). Formed from the log difference, as ntkeval.stats.estimators forms weights."""
    log_w = q.logp_learner - q.logp_control
    return {e.name: e.coefficients(log_w) for e in REGISTRY}


def exact_delta(questions: list[CanonicalQuestion]) -> float:
    return float(np.mean([q.p_learner - q.p_control for q in questions]))


def z_value(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid; valid: a number in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def sizes(n_max: int) -> list[int]:
    """Samples per question from 2 to n_max in steps of about sqrt(2): 2, 3, 4, 6, 8, 11, 16, 23, 32, ... n_max."""
    if n_max < 2:
        raise ValueError(f"n_max={n_max!r} is invalid; valid: an integer >= 2")
    out, k = [], 2
    while round(2 ** (k / 2)) < n_max:
        out.append(round(2 ** (k / 2)))
        k += 1
    return out + [n_max]


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if trials < 1:
        raise ValueError("need at least one trial")
    z = z_value(confidence)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _scaled(coef: np.ndarray, k: np.ndarray) -> np.ndarray:
    """coef * k with 0 wherever k is 0 (an infinite weight that was never drawn adds nothing)."""
    return np.where(k > 0, coef * np.where(k > 0, k, 1), 0.0)


def estimates(questions: list[CanonicalQuestion], k_c: np.ndarray, k_l: np.ndarray, n: int) -> dict:
    """Per estimator: (value, variance) over questions for counts k_c, k_l of shape (replications, questions)."""
    if n < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {n}")
    coefs = [coefficients(q) for q in questions]
    out = {}
    for name in ESTIMATORS:
        alpha = np.array([c[name][0] for c in coefs])
        beta = np.array([c[name][1] for c in coefs])
        value = (_scaled(alpha, k_c) + _scaled(beta, k_l)) / n
        var = (_scaled(alpha ** 2, k_c * (n - k_c)) + _scaled(beta ** 2, k_l * (n - k_l))) / (n * n * (n - 1))
        K = len(questions)
        out[name] = (value.mean(axis=1), var.sum(axis=1) / K ** 2)
    return out


def exact_sd(questions: list[CanonicalQuestion], name: str, n: int) -> float:
    """The true standard deviation of an estimator's mean over questions at n samples per question and model."""
    total = 0.0
    for q in questions:
        alpha, beta = coefficients(q)[name]
        for coef, p in ((alpha, q.p_control), (beta, q.p_learner)):
            if coef != 0.0 and p > 0.0:
                total += coef * coef * p * (1 - p)
    return math.sqrt(total / n) / len(questions)


def normal_power(delta: float, sd: float, z: float) -> float:
    """Power of |estimate| > z sd with the right sign when the estimate is normal with known sd."""
    if sd == 0.0:
        return float(delta != 0.0)
    return NormalDist().cdf(abs(delta) / sd - z)


def simulate(questions: list[CanonicalQuestion], ns: list[int], replications: int = 400, seed: int = 0,
             confidence: float = 0.95) -> list[dict]:
    """Per estimator and sample size n: `replications` independent draws of n completions per question from each
    model (binomial counts of canonical completions), the estimates' mean, bias, RMSE and spread against the exact
    delta, the mean reported standard error, the power (fraction detecting the delta) with its Wilson interval and
    the coverage (fraction whose estimate +- z se contains the exact delta); `sd_exact` and `power_normal` are the
    closed-form standard deviation (= the exact RMSE) and the normal-approximation power."""
    if replications < 1:
        raise ValueError(f"replications={replications!r} is invalid; valid: an integer >= 1")
    reference, z = exact_delta(questions), z_value(confidence)
    p_c = np.array([q.p_control for q in questions])
    p_l = np.array([q.p_learner for q in questions])
    rng = np.random.default_rng(seed)
    rows = []
    for n in ns:
        k_c = rng.binomial(n, p_c, size=(replications, len(questions)))
        k_l = rng.binomial(n, p_l, size=(replications, len(questions)))
        for name, (value, var) in estimates(questions, k_c, k_l, n).items():
            se = np.sqrt(var)
            hits = int(np.sum((np.abs(value) > z * se) & (value * reference > 0)))
            covered = float(np.mean(np.abs(value - reference) <= z * se))
            low, high = wilson(hits, replications, 0.95)
            sd = exact_sd(questions, name, n)
            rows.append({"estimator": name, "n": n, "replications": replications, "mean": float(value.mean()),
                         "bias": float(value.mean() - reference),
                         "rmse": float(np.sqrt(np.mean((value - reference) ** 2))),
                         "sd": float(value.std(ddof=1)) if replications > 1 else 0.0, "sd_exact": sd,
                         "se": float(se.mean()), "power": hits / replications, "power_low": low,
                         "power_high": high, "power_normal": normal_power(reference, sd, z), "coverage": covered})
    return rows


def samples_needed(rows: list[dict], power: float = 0.8) -> dict[str, tuple[int | None, int | None, int | None]]:
    """Per estimator: (fewest, low, high) samples per question and model. `fewest` is the smallest size whose
    measured power reaches `power`; `low` the smallest whose power's Wilson interval reaches it (fewer are
    implausible); `high` the smallest whose whole Wilson interval is at or above it (from there on it is
    established). None: no size measured qualifies (more than the largest size)."""
    if not 0 < power <= 1:
        raise ValueError(f"power={power!r} is invalid; valid: a number in (0, 1]")
    out = {}
    for name in ESTIMATORS:
        own = sorted((r for r in rows if r["estimator"] == name), key=lambda r: r["n"])
        first = lambda key: next((r["n"] for r in own if r[key] >= power), None)  # noqa: E731
        out[name] = (first("power"), first("power_high"), first("power_low"))
    return out


def normal_samples_needed(questions: list[CanonicalQuestion], name: str, power: float, confidence: float) -> float:
    """Samples per question and model at which the normal approximation predicts `power` (sd_exact ~ 1/sqrt(n)):
    a prediction to compare with the measurement, which is what counts where counts are small."""
    delta = exact_delta(questions)
    sd1 = exact_sd(questions, name, 1)
    if delta == 0.0:
        return math.inf
    return ((z_value(confidence) + NormalDist().inv_cdf(power)) * sd1 / abs(delta)) ** 2
