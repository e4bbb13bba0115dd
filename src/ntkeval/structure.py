"""Deep versus surface: does learning transfer along the operation (or domain) or along the surface format?

For `arith` skills "op/format", per (model, learner): the mean kernel over pairs that share the operation but not
the format (A) against pairs that share the format but not the operation (B). For data sets whose skills are
"domain/name": same-domain pairs (off the diagonal, A) against cross-domain pairs (B). The difference A - B gets
a 95% interval from a bootstrap that resamples skills (pairs sharing a skill are not independent, so skills, not
pairs, are the unit) and a Mantel-style permutation test that shuffles which skill is which (its operation and
format, or its domain, move together), so the null is "the kernel ignores the skills' labels".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

STRUCTURE_COLUMNS = ["model", "learner", "dataset", "contrast", "mean_a", "mean_b", "diff", "ci_low", "ci_high",
                     "p_value", "n_pairs_a", "n_pairs_b", "verdict"]


@dataclass(frozen=True)
class Contrast:
    model: str
    learner: str
    dataset: str
    contrast: str      # what A and B are
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pairs_a: int
    n_pairs_b: int
    verdict: str       # one line: which structure the learning follows and how sure

    def row(self) -> dict:
        return asdict(self)


def _labels(skills: list[str], dataset: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Group label per skill (operation or domain), surface label per skill (arith's format) or None."""
    groups = [s.split("/", 1)[0] for s in skills]
    if dataset == "arith":
        surfaces = [s.split("/", 1)[1] for s in skills]
        return _codes(groups), _codes(surfaces), "same operation, other format (A) vs same format, other operation (B)"
    return _codes(groups), None, "same domain (A) vs other domains (B)"


def _codes(values: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return np.array([index[v] for v in values])


def _masks(group: np.ndarray, surface: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    same_group = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(len(group), dtype=bool)
    if surface is None:
        return same_group & off_diagonal, ~same_group
    same_surface = surface[:, None] == surface[None, :]
    return same_group & ~same_surface, same_surface & ~same_group


def _diff(kernel: np.ndarray, group: np.ndarray, surface: np.ndarray | None) -> tuple[float, float]:
    a, b = _masks(group, surface)
    a &= ~np.isnan(kernel)
    b &= ~np.isnan(kernel)
    if not a.any() or not b.any():
        return float("nan"), float("nan")
    return float(kernel[a].mean()), float(kernel[b].mean())


def contrast_of(kernel: np.ndarray, skills: list[str], dataset: str, seed: int = 0, resamples: int = 2000,
                permutations: int = 2000) -> tuple[str, float, float, float, float, float, int, int]:
    """(contrast, mean A, mean B, diff, ci_low, ci_high, p, n_a, n_b) for a square kernel over `skills`."""
    group, surface, what = _labels(skills, dataset)
    mean_a, mean_b = _diff(kernel, group, surface)
    mask_a, mask_b = _masks(group, surface)
    n_a, n_b = int((mask_a & ~np.isnan(kernel)).sum()), int((mask_b & ~np.isnan(kernel)).sum())
    diff = mean_a - mean_b
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):  # resample skills; a skill drawn twice is two skills (its pair with itself excluded)
        pick = rng.integers(0, len(skills), size=len(skills))
        sub = kernel[np.ix_(pick, pick)].copy()
        np.fill_diagonal(sub, np.nan)
        a, b = _diff(sub, group[pick], None if surface is None else surface[pick])
        if not np.isnan(a - b):
            boots.append(a - b)
    low, high = np.quantile(boots, [0.025, 0.975]) if boots else (float("nan"), float("nan"))
    extreme = 0
    for _ in range(permutations):  # Mantel-style: relabel skills jointly (operation and format travel together)
        perm = rng.permutation(len(skills))
        a, b = _diff(kernel, group[perm], None if surface is None else surface[perm])
        extreme += abs(a - b) >= abs(diff) - 1e-12
    p_value = (1 + extreme) / (1 + permutations)
    return what, mean_a, mean_b, diff, float(low), float(high), p_value, n_a, n_b


def verdict_text(name: str, dataset: str, diff: float, low: float, high: float, p: float) -> str:
    deep, surface = ("the operation (deep)", "the surface format") if dataset == "arith" else \
        ("the domain (deep)", "no domain (cross-domain pairs gain more)")
    sure = f"A - B = {diff:+.3f} [{low:+.3f}, {high:+.3f}], permutation p = {p:.3g}"
    if np.isnan(diff):
        return f"{name}: not enough pairs to compare ({sure})"
    if p < 0.05 and (low > 0 or high < 0):
        return f"{name}: learning follows {deep if diff > 0 else surface}: {sure}"
    return f"{name}: no clear structure: {sure}"


def structure_stats(rows: list[dict], seed: int = 0, resamples: int = 2000, permutations: int = 2000) -> list[Contrast]:
    """One contrast per (model, learner, dataset) from tidy kernel rows (kernel.csv's columns)."""
    tables: dict[tuple[str, str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for r in rows:
        tables[(r["model"], r["learner"], r["dataset"])][(r["train_skill"], r["test_skill"])] = float(r["delta"])
    out = []
    for (model, learner, dataset), pairs in tables.items():
        skills = sorted({s for pair in pairs for s in pair}, key=lambda s: list(dict.fromkeys(
            [t for _, t in pairs] + [t for t, _ in pairs])).index(s))
        kernel = np.full((len(skills), len(skills)), np.nan)
        for (train, test), value in pairs.items():
            kernel[skills.index(train), skills.index(test)] = value
        np.fill_diagonal(kernel, np.nan)  # the diagonal belongs to neither A nor B
        what, a, b, diff, low, high, p, n_a, n_b = contrast_of(kernel, skills, dataset, seed, resamples,
                                                                 permutations)
        verdict = verdict_text(f"{model} {learner}", dataset, diff, low, high, p)
        out.append(Contrast(model, learner, dataset, what, a, b, diff, low, high, p, n_a, n_b, verdict))
    return out
