"""Agreement of two kernels over the same skills: Spearman's rank correlation of their entries, and the Mantel test of
it, which permutes the skill labels of one kernel jointly by rows and columns (Mantel 1967).

Why permute labels and not entries: the entries of a kernel are not exchangeable (a train skill's row shares that
skill's learnability, a test skill's column its difficulty, the diagonal is self-transfer), so a test that shuffled
entries would call any two kernels with a strong row effect "related". Relabelling the skills keeps each kernel's
rows, columns and diagonal together and asks only whether the skills line up. The p-value is one-sided (predicted
and measured kernels should agree, not disagree): the share of relabellings whose rho is at least the observed one,
over all k! of them up to `exhaustive_up_to` skills, else over `permutations` seeded random ones plus the identity
((1 + hits) / (1 + permutations), which is valid for random permutations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntkeval.stats.kernels import ENUMERATE_UP_TO, all_orders

EXHAUSTIVE_UP_TO = ENUMERATE_UP_TO  # skills: 8! = 40320 relabellings, as the kernel comparisons' tests enumerate
PERMUTATIONS = 2000   # random relabellings beyond that
_TIES = 1e-12         # a relabelling that reaches the observed rho up to rounding counts as reaching it


def ranks(values) -> np.ndarray:
    """1-based ranks, ties given their average rank (as Spearman's rho needs)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranked = np.empty(x.size, dtype=np.float64)
    ranked[order] = np.arange(1, x.size + 1, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranked)
    return sums[inverse] / counts[inverse]


def spearman(x, y) -> float:
    """Spearman's rho of paired values (Pearson's r of their average ranks); NaN with fewer than 3 pairs or when
    either side is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs paired values, got {x.size} and {y.size}")
    if x.size < 3:
        return math.nan
    rx, ry = _standardised(ranks(x)), _standardised(ranks(y))
    if rx is None or ry is None:
        return math.nan
    return float(np.clip(rx @ ry, -1.0, 1.0))


def _standardised(r: np.ndarray) -> np.ndarray | None:
    centred = r - r.mean()
    norm = math.sqrt(float(centred @ centred))
    return centred / norm if norm > 0 else None


@dataclass(frozen=True)
class Mantel:
    rho: float           # Spearman's rho of the two kernels' entries
    p_value: float       # one-sided: relabellings of the skills reaching rho or more
    relabellings: int    # how many were compared (identity included)
    exhaustive: bool     # all k! of them
    skills: int
    entries: int


def mantel(a, b, permutations: int = PERMUTATIONS, seed: int = 0,
           exhaustive_up_to: int = EXHAUSTIVE_UP_TO) -> Mantel:
    """The Mantel test of two complete square kernels over the same k skills (rows and columns in the same order)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(f"mantel needs two square kernels of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("mantel needs complete kernels (every entry finite)")
    k = a.shape[0]
    ra, rb = _standardised(ranks(a.ravel())), _standardised(ranks(b.ravel()))
    if k < 2 or ra is None or rb is None:
        return Mantel(math.nan, math.nan, 0, False, k, k * k)
    ra, rb = ra.reshape(k, k), rb.reshape(k, k)  # ranks move with their entries: rank once, permute the ranks
    observed = float(np.sum(ra * rb))
    exhaustive = k <= exhaustive_up_to
    if exhaustive:
        orders = all_orders(k)
    else:
        rng = np.random.default_rng(seed)
        orders = np.array([rng.permutation(k) for _ in range(permutations)], dtype=np.intp)
    reached = 0
    for start in range(0, len(orders), 4096):  # bounded memory: 4096 relabelled kernels at a time
        chunk = orders[start:start + 4096]
        relabelled = ra[chunk[:, :, None], chunk[:, None, :]]  # a[pi(i), pi(j)] for each relabelling pi
        reached += int(np.sum(np.einsum("nij,ij->n", relabelled, rb) >= observed - _TIES))
    p = reached / len(orders) if exhaustive else (1 + reached) / (1 + len(orders))
    return Mantel(float(np.clip(observed, -1.0, 1.0)), float(p), len(orders) + (0 if exhaustive else 1),
                  exhaustive, k, k * k)
