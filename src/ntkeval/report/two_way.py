"""The two-way model of a kernel's off-diagonal entries, K[i, j] = mu + r[i] + c[j] + a A[i, j] + b B[i, j] + e, its
contrast a - b, and the contrast's intervals over skills (jackknife) and over questions (stratified t); see
ntkeval.report.structure for why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntkeval.report.layout import Layout
from ntkeval.stats.intervals import t_quantile


class TwoWay:
    """The observed off-diagonal entries of one kernel and an orthonormal basis Q of mu + r[i] + c[j] over them.

    By Frisch-Waugh-Lovell, a and b of the two-way model come from regressing the kernel on the A and B indicators
    after projecting Q out of both; Q depends only on which entries are observed, not on the labels, so every
    relabelling of a permutation test reuses it.
    """

    def __init__(self, kernel: np.ndarray):
        observed = ~np.isnan(kernel) & ~np.eye(kernel.shape[0], dtype=bool)
        self.n = kernel.shape[0]
        self.i, self.j = np.nonzero(observed)
        self.y = kernel[self.i, self.j]
        m = self.y.size
        x = np.zeros((m, 1 + 2 * self.n))
        x[:, 0] = 1.0
        x[np.arange(m), 1 + self.i] = 1.0
        x[np.arange(m), 1 + self.n + self.j] = 1.0
        u, s, _ = np.linalg.svd(x, full_matrices=False) if m else (np.zeros((0, 0)), np.zeros(0), None)
        self.q = u[:, s > 1e-10 * s[0]] if s.size else u
        self.y_residual = self.y - self.q @ (self.q.T @ self.y)

    def indicators(self, group: np.ndarray, surface: np.ndarray | None) -> np.ndarray:
        """(R, m, k) A (and B) over the observed entries, for R label arrangements given as (R, n) codes."""
        same_group = group[:, self.i] == group[:, self.j]
        if surface is None:  # B is every other off-diagonal pair: the baseline of the model
            return same_group[:, :, None].astype(np.float64)
        same_surface = surface[:, self.i] == surface[:, self.j]
        return np.stack([same_group & ~same_surface, same_surface & ~same_group], axis=-1).astype(np.float64)

    def contrasts(self, group: np.ndarray, surface: np.ndarray | None, chunk: int = 4096) -> np.ndarray:
        """a - b for each of R arrangements of labels ((R, n) codes); NaN where the layout cannot separate them."""
        out = np.empty(group.shape[0])
        for start in range(0, group.shape[0], chunk):
            stop = start + chunk
            z = self.indicators(group[start:stop], None if surface is None else surface[start:stop])
            out[start:stop] = self.solve(z)[0]
        return out

    def solve(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a - b per arrangement, weights w with a - b = w . y per arrangement) from (R, m, k) indicators."""
        z = z - np.einsum("mp,rpk->rmk", self.q, np.einsum("mp,rmk->rpk", self.q, z))
        gram = np.einsum("rmk,rml->rkl", z, z)
        c = np.array([1.0] if z.shape[2] == 1 else [1.0, -1.0])
        # pseudo-inverse with an absolute cut: an indicator the skill effects explain entirely leaves a residual of
        # rounding error (~1e-30), which a relative cut would take for signal
        values, vectors = np.linalg.eigh(gram)
        inverse = np.where(values > 1e-8, 1.0 / np.where(values > 1e-8, values, 1.0), 0.0)
        pinv = np.einsum("rkj,rj,rlj->rkl", vectors, inverse, vectors)
        # a - b is estimable when c lies in the row space of the Gram matrix (else some a - b fits any kernel)
        estimable = np.abs(np.einsum("rkl,rl->rk", gram, pinv @ c) - c).max(axis=1) < 1e-6
        weights = np.einsum("rmk,rk->rm", z, pinv @ c)
        values = weights @ self.y_residual
        return np.where(estimable & (z.shape[1] > 0), values, np.nan), weights


@dataclass(frozen=True)
class Fit:
    diff: float
    mean_a: float
    mean_b: float
    raw_diff: float
    n_a: int
    n_b: int
    weights: np.ndarray | None   # n x n: diff = sum(weights * kernel) over observed entries; None if not estimable


def two_way_fit(kernel: np.ndarray, layout: Layout) -> Fit:
    """The contrast a - b of the two-way model, its A and B means with skill effects removed, and the raw means."""
    design = TwoWay(kernel)
    a_mask, b_mask = (m[design.i, design.j] for m in layout.masks())
    raw = float(design.y[a_mask].mean() - design.y[b_mask].mean()) if a_mask.any() and b_mask.any() else math.nan
    surface = None if layout.surface is None else layout.surface[None, :]
    z = design.indicators(layout.group[None, :], surface)
    values, weights = design.solve(z)
    if np.isnan(values[0]) or not a_mask.any() or not b_mask.any():
        return Fit(math.nan, math.nan, math.nan, raw, int(a_mask.sum()), int(b_mask.sum()), None)
    # a and b themselves (one least-squares solution; only a - b need be unique), then the skill effects
    # mu + r[i] + c[j]: the projection onto Q of what a and b leave over (the residual is orthogonal to Q)
    coefficients = np.linalg.lstsq(z[0] - design.q @ (design.q.T @ z[0]), design.y_residual, rcond=None)[0]
    effects = design.q @ (design.q.T @ (design.y - z[0] @ coefficients))
    adjusted = design.y - effects + effects.mean()
    full = np.zeros((design.n, design.n))
    full[design.i, design.j] = weights[0]
    return Fit(float(values[0]), float(adjusted[a_mask].mean()), float(adjusted[b_mask].mean()), raw,
               int(a_mask.sum()), int(b_mask.sum()), full)


def skill_jackknife(kernel: np.ndarray, layout: Layout, level: float = 0.95) -> tuple[float, float]:
    """Interval over skills: a - b refitted without each skill in turn (its row and column), t on n - 1 df."""
    n = len(layout.group)
    full = two_way_fit(kernel, layout).diff
    if n < 3 or math.isnan(full):
        return math.nan, math.nan
    keep = [np.arange(n) != k for k in range(n)]
    values = np.array([two_way_fit(kernel[np.ix_(k, k)], layout.without(i)).diff for i, k in enumerate(keep)])
    if np.isnan(values).any():  # some skill cannot be left out without losing the contrast: too few skills
        return math.nan, math.nan
    se = math.sqrt((n - 1) / n * float(((values - values.mean()) ** 2).sum()))
    half = t_quantile(level, n - 1) * se
    return full - half, full + half


def question_contrast(weights: np.ndarray, skills: list[str], per_question: dict[tuple[str, str], dict],
                      level: float = 0.95) -> tuple[float, float, float, int]:
    """(a - b from per-question deltas, interval over questions, smallest question count per test skill).

    a - b = sum over entries of w[i, j] * K[i, j], and K[i, j] is the mean over test skill j's questions of the
    per-question delta d[i, j, q], with the same questions for every train skill i. So a - b = sum over test
    skills j of the mean over q of z[j, q] = sum_i w[i, j] d[i, j, q]: a stratified mean, whose variance is
    sum_j var(z[j, .]) / m_j. Only questions present for every train skill of a test skill are used.
    """
    total, variance, dof_terms, smallest = 0.0, 0.0, 0.0, None
    for j, test in enumerate(skills):
        trains = [skills[i] for i in np.nonzero(weights[:, j])[0]]
        if not trains:
            continue
        if any((train, test) not in per_question for train in trains):
            return math.nan, math.nan, math.nan, 0
        ids = set.intersection(*(set(per_question[(t, test)]) for t in trains))
        if len(ids) < 2:
            return math.nan, math.nan, math.nan, len(ids)
        ordered = sorted(ids, key=str)
        z = sum(weights[skills.index(t), j] * np.array([per_question[(t, test)][q] for q in ordered]) for t in trains)
        part = float(z.var(ddof=1)) / z.size
        total += float(z.mean())
        variance += part
        dof_terms += part ** 2 / (z.size - 1)
        smallest = z.size if smallest is None else min(smallest, z.size)
    if smallest is None:
        return math.nan, math.nan, math.nan, 0
    dof = variance ** 2 / dof_terms if dof_terms > 0 else math.inf
    half = t_quantile(level, min(dof, 1e6)) * math.sqrt(variance)
    return total, total - half, total + half, smallest

