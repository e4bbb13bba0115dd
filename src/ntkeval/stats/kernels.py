"""Statistics that compare square skill kernels (train skills = test skills, in the same order): specificity, its
relabelling test, the paired comparison of two kernels' specificities, centred kernel alignment and its test.

A kernel K is an n x n array, K[i, j] the delta of test skill j after adapting to train skill i; NaN marks a missing
entry, and every statistic uses the entries there are (its docstring says how).

- Specificity S = mean of the observed diagonal - mean of the observed off-diagonal entries: how much more a skill
  gains from adapting to itself than from adapting to another skill. S is a weighted sum of entries
  (specificity_weights), so its interval over questions comes from the per-question deltas (report.two_way's
  question_contrast). Its test relabels the test skills (the columns): every relabelling still takes one entry
  from each row and each column onto the diagonal, so additive train- and test-skill effects (K = mu + r[i] + c[j])
  add the same constant to every relabelling's diagonal and cancel exactly; under "no diagonal advantage, noise
  exchangeable across columns" every relabelling is equally likely and the test is exact.
- Row specificity r_i = K[i, i] - mean_{j != i} K[i, j]: with no entry missing mean_i r_i = S (each row has n - 1
  off-diagonal entries), so S_A - S_B = mean_i (r_A,i - r_B,i) and swapping row i between two kernels flips the
  sign of one term: the sign-flip test over rows.
- Linear CKA of two square kernels, <HKH, HLH>_F / (||HKH||_F ||HLH||_F) with H = I - 11'/n, taken as it stands for
  non-symmetric kernels: HKH removes the row and column means (additive train- and test-skill effects), so CKA is
  the cosine between the two kernels' interaction patterns, in [-1, 1], blind to scale, to an added constant and to
  additive skill effects. For symmetric positive semi-definite K, L it is the usual linear CKA of two Gram matrices.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ntkeval.stats.intervals import mean_interval, t_quantile

ENUMERATE_UP_TO = 8     # skills: all n! relabellings (40320 at 8), beyond that `permutations` random ones
FLIP_ALL_UP_TO = 12     # rows: all 2^n sign vectors (4096 at 12), beyond that `permutations` random ones
_TIE = 1e-9             # relative: sums of the same entries in another order differ in their last bits


@dataclass(frozen=True)
class PermutationTest:
    statistic: float
    p_greater: float    # one-sided: as large as observed or larger
    p_two_sided: float
    how: str            # "all 720 relabellings", "2000 random sign flips"


def specificity_weights(observed: np.ndarray) -> np.ndarray | None:
    """W with S = sum(W * K) over the `observed` (n x n boolean) entries: +1/(observed diagonal entries) on them,
    -1/(observed off-diagonal entries) on those, 0 elsewhere; None when either set is empty."""
    diagonal = np.eye(observed.shape[0], dtype=bool)
    on, off = observed & diagonal, observed & ~diagonal
    if not on.any() or not off.any():
        return None
    return on / on.sum() - off / off.sum()


def specificity(kernel: np.ndarray) -> float:
    """Mean of the observed diagonal minus mean of the observed off-diagonal entries (NaN if either is empty)."""
    weights = specificity_weights(~np.isnan(kernel))
    return math.nan if weights is None else float(np.nansum(weights * kernel))


def scaled_specificity(kernel: np.ndarray) -> float:
    """Specificity in units of the kernel's spread: S / sd of all observed entries (ddof 1). Blind to the kernel's
    scale, so a learner that moves every skill a lot is not more specific for that alone; NaN with no spread."""
    values = kernel[~np.isnan(kernel)]
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return specificity(kernel) / sd if sd > 0 else math.nan


def row_specificities(kernel: np.ndarray) -> np.ndarray:
    """r_i = K[i, i] - mean of row i's observed off-diagonal entries; NaN where either is missing."""
    off = np.where(np.eye(kernel.shape[0], dtype=bool), np.nan, kernel)
    counts = (~np.isnan(off)).sum(axis=1)
    means = np.where(counts > 0, np.nansum(off, axis=1) / np.maximum(counts, 1), np.nan)
    return np.diag(kernel) - means


@lru_cache(maxsize=16)
def all_orders(n: int) -> np.ndarray:
    """All n! orders of n skills, the identity first (cached: an exhaustive test reuses them)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.intp)


def relabellings(n: int, permutations: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(R, n) orders of the skills and whether they are all n! of them (else `permutations` random ones)."""
    if n <= ENUMERATE_UP_TO:
        return all_orders(n), True
    return rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1), False


def _p_values(observed: float, values: np.ndarray, exact: bool, what: str) -> PermutationTest:
    """One- and two-sided p of `observed` among `values`. exact: the values are the whole permutation distribution
    (the identity included), p = as extreme / all; else a random sample without the identity, p = (1 + as
    extreme) / (1 + drawn). Two-sided counts |value - centre| >= |observed - centre|, the centre being the
    distribution's mean (0 for sign flips, and for relabellings of a kernel with no entry missing)."""
    values = values[~np.isnan(values)]
    # relative to the statistic's scale, not to 1: a kernel of tiny deltas (a predicted kernel, a tiny model) must
    # not see every relabelling as a tie; float sums of the same entries in another order differ in the last bits
    scale = max(abs(observed), float(np.abs(values).max()) if values.size else 0.0)
    tie = _TIE * scale
    centre = float(values.mean())
    counts = [int((values >= observed - tie).sum()),
              int((np.abs(values - centre) >= abs(observed - centre) - tie).sum())]
    if exact:
        p_greater, p_two_sided = (c / values.size for c in counts)
        return PermutationTest(observed, p_greater, p_two_sided, f"all {values.size} {what}")
    p_greater, p_two_sided = ((1 + c) / (1 + values.size) for c in counts)
    return PermutationTest(observed, p_greater, p_two_sided, f"{values.size} random {what}")


def min_p(n: int, permutations: int = 2000) -> float:
    """The smallest p a relabelling test over n skills can give: 1 / n! when all are counted, else 1 / (1 + drawn)."""
    return 1.0 / math.factorial(n) if n <= ENUMERATE_UP_TO else 1.0 / (1 + permutations)


def relabelled_specificities(kernel: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """S of the kernel with its test skills relabelled by each order ((R, n)): K'[i, j] = K[i, order[j]], so the
    diagonal takes K[i, order[i]]. Missing entries stay missing where they land; NaN where a relabelling leaves no
    diagonal or no off-diagonal entry."""
    n = kernel.shape[0]
    picks = kernel[np.arange(n)[None, :], orders]
    seen = ~np.isnan(picks)
    on_count, on_sum = seen.sum(axis=1), np.where(seen, picks, 0.0).sum(axis=1)
    total_count, total_sum = int((~np.isnan(kernel)).sum()), float(np.nansum(kernel))
    off_count = total_count - on_count
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((on_count > 0) & (off_count > 0), on_sum / on_count - (total_sum - on_sum) / off_count, np.nan)


def specificity_test(kernel: np.ndarray, permutations: int = 2000, seed: int = 0) -> PermutationTest:
    """S against the relabellings of the test skills (columns): all n! orders up to ENUMERATE_UP_TO skills, else
    `permutations` seeded random ones. With no entry missing, additive effects cancel exactly (module docstring);
    with entries missing, approximately."""
    observed = specificity(kernel)
    if math.isnan(observed):
        return PermutationTest(math.nan, math.nan, math.nan, "none")
    orders, exact = relabellings(kernel.shape[0], permutations, np.random.default_rng(seed))
    return _p_values(observed, relabelled_specificities(kernel, orders), exact, "relabellings of the test skills")


def sign_flip_test(differences: np.ndarray, permutations: int = 2000, seed: int = 0) -> PermutationTest:
    """The mean of per-row differences (NaN rows dropped) against its sign flips: exact when each row's difference
    is symmetric about 0 and rows are independent (e.g. row i of A and row i of B exchangeable). All 2^n sign
    vectors up to FLIP_ALL_UP_TO rows, else `permutations` seeded random ones."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return PermutationTest(math.nan, math.nan, math.nan, "none")
    if d.size <= FLIP_ALL_UP_TO:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)[None, :]) & 1)
        exact = True
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(permutations, d.size))
        exact = False
    return _p_values(float(d.mean()), (signs * d).mean(axis=1), exact, "sign flips of the rows")


def _centred(kernel: np.ndarray) -> np.ndarray:
    return kernel - kernel.mean(axis=0, keepdims=True) - kernel.mean(axis=1, keepdims=True) + kernel.mean()


def cka(k: np.ndarray, l: np.ndarray) -> float:
    """Linear CKA of two complete n x n kernels on the same ordered skills (see the module docstring); NaN when
    either kernel is purely additive (nothing left once centred) or has a missing entry."""
    kc, lc = _centred(k), _centred(l)
    norms = [float(np.linalg.norm(kc)), float(np.linalg.norm(lc))]
    # an additive kernel centres to rounding error, whose direction means nothing
    if not all(math.isfinite(v) and v > 1e-10 * float(np.linalg.norm(m)) for v, m in zip(norms, (k, l))):
        return math.nan
    return float((kc * lc).sum() / (norms[0] * norms[1]))


def cka_test(k: np.ndarray, l: np.ndarray, permutations: int = 2000, seed: int = 0) -> PermutationTest:
    """CKA against joint relabellings of one kernel's skills (rows and columns by the same order, so its diagonal
    stays its diagonal): is the pattern of which skill transfers to which more alike than chance? A diagonal both
    kernels share is kept by every relabelling, so it alone does not make p small."""
    observed = cka(k, l)
    if math.isnan(observed):
        return PermutationTest(math.nan, math.nan, math.nan, "none")
    kc, lc = _centred(k), _centred(l)
    orders, exact = relabellings(k.shape[0], permutations, np.random.default_rng(seed))
    # H commutes with relabellings: centring the relabelled kernel is relabelling the centred one
    values = np.einsum("ij,rij->r", kc, lc[orders[:, :, None], orders[:, None, :]])
    values /= float(np.linalg.norm(kc) * np.linalg.norm(lc))
    return _p_values(observed, values, exact, "joint relabellings of the skills")


def skill_jackknife(kernel: np.ndarray, statistic, level: float = 0.95) -> tuple[float, float]:
    """Interval over skills for statistic(kernel): refitted without each skill in turn (its row and column), the
    jackknife standard error, t on n - 1 degrees of freedom. NaN when n < 3 or a refit is NaN."""
    n = kernel.shape[0]
    full = statistic(kernel)
    if n < 3 or math.isnan(full):
        return math.nan, math.nan
    values = np.array([statistic(kernel[np.ix_(keep, keep)]) for keep in (np.arange(n) != k for k in range(n))])
    if np.isnan(values).any():
        return math.nan, math.nan
    half = t_quantile(level, n - 1) * math.sqrt((n - 1) / n * float(((values - values.mean()) ** 2).sum()))
    return full - half, full + half


def mover_difference(a: float, a_ci: tuple[float, float], b: float, b_ci: tuple[float, float]) -> tuple[float, float]:
    """Interval for a - b from intervals of two independent estimates: the method of variance estimates recovery
    (Zou and Donner 2008), which keeps each interval's asymmetry: a - b -+ sqrt(the matching distances squared)."""
    (a_low, a_high), (b_low, b_high) = a_ci, b_ci
    return (a - b - math.hypot(a - a_low, b_high - b), a - b + math.hypot(a_high - a, b - b_low))


def entry_interval(weights: np.ndarray, kernel: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """Interval for sum(W * K) from the entries' own intervals, when no per-question deltas are at hand.

    Test skills draw their own questions, so the test columns are independent: their distances combine as
    MOVER's root sum of squares. Entries of one column share its questions; their distances are added, the
    perfectly correlated case, which can only widen the interval. NaN if a weighted entry has no interval.
    """
    used = weights != 0
    if not used.any() or np.isnan(low[used]).any() or np.isnan(high[used]).any():
        return math.nan, math.nan
    value = float((weights[used] * kernel[used]).sum())
    down_gap = np.where(weights > 0, weights * (kernel - low), -weights * (high - kernel))
    up_gap = np.where(weights > 0, weights * (high - kernel), -weights * (kernel - low))
    down = np.where(used, down_gap, 0.0).sum(axis=0)
    up = np.where(used, up_gap, 0.0).sum(axis=0)
    return value - float(np.sqrt((down ** 2).sum())), value + float(np.sqrt((up ** 2).sum()))


def paired_difference(d_a, d_b, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of d_a - d_b over the same questions: differences of two probability differences lie in
    [-2, 2], so they are halved into [-1, 1] for the project's bounded interval and doubled back (the bounded
    method falls back to BCa where a scorer's per-question deltas are not probability differences)."""
    half = (np.asarray(d_a, dtype=np.float64) - np.asarray(d_b, dtype=np.float64)) / 2.0
    found = mean_interval(half, seed=seed, level=level)
    return 2 * found.delta, 2 * found.ci_low, 2 * found.ci_high
