"""Deep versus surface: does learning transfer along the operation (or domain) or along the surface format?

One contrast per kernel (one IDENTITY). For `arith` skills "op/format": do pairs that share the operation but not
the format (A) gain more than pairs that share the format but not the operation (B)? For data sets whose skills
are "domain/name": same-domain pairs off the diagonal (A) against cross-domain pairs (B).

Raw means of A and B pairs confound the contrast with row and column effects: a train skill that helps every test
skill, or a test skill that every learner improves, weighs on A or B by how many A and B pairs its row or column
holds, which differs between skills when domains have unequal sizes (KhanSkill) or an entry is missing. A kernel
with no within-domain transfer but one easier test domain read as "deep" at p ~ 0.001 that way. So the kernel's
off-diagonal entries are fitted by a two-way model

    K[i, j] = mu + r[i] + c[j] + a * A[i, j] + b * B[i, j] + e[i, j]     (domain data: B is the baseline, b = 0)

by least squares over the observed off-diagonal entries. The diagonal (a skill with itself) belongs to neither A
nor B and is left out, so there is no complete table to double-centre; fitting r and c on the entries there are
is the double-centring that works with the diagonal missing. The contrast is a - b, what sharing the operation
adds over sharing the format with every train- and test-skill effect removed; mean_a and mean_b are the A and B
means of the kernel minus the fitted r and c, so mean_a - mean_b = a - b. raw_diff keeps the confounded value.

Three uncertainties, for three questions:
- p_value: could a relabelling of the skills (a skill's operation and format, or its domain, move with it) give
  a contrast as large? a - b is linear in K and blind to r and c, so if the kernel minus its skill effects
  ignores the labels, every relabelling is equally likely and the permutation test is exact. Up to
  ENUMERATE_UP_TO skills every relabelling is counted, beyond that random ones. min_p is the smallest p the
  layout can give at all, (relabellings that keep A and B, or swap them) / n!: a 2 x 2 grid cannot go below
  1/3. one_label_p is the p of a kernel that follows the operation alone or the format alone, which ties with
  every relabelling that keeps that partition: a 3 x 2 grid has min_p = 1/60 but one_label_p = 1/10.
- ci_low, ci_high: over skills (would other skills like these show it?): a delete-one-skill jackknife, t on
  n - 1 degrees of freedom.
- q_ci_low, q_ci_high: over questions, these skills fixed, from per-question deltas: a - b is a weighted sum of
  kernel entries, each a mean over its test skill's questions (the same questions for every train skill), so
  it is a sum over test skills of means of per-question values; a t interval on that stratified mean with
  Welch-Satterthwaite degrees of freedom.
tests/test_statistics_calibration.py simulates each: the verdict's false-claim rate under nulls with planted
skill effects, its power, and the coverage of both intervals.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ntkeval.stats.intervals import t_quantile

# what makes two kernels different kernels: rows differing in any of these are never merged (the report's tables
# use the same tuple, ntkeval.report.tables.TABLE_IDENTITY; a test keeps them equal)
IDENTITY = ("model", "learner", "dataset", "scorer", "estimate", "config_id", "seed")
ENUMERATE_UP_TO = 8    # skills: 8! = 40320 relabellings are evaluated exactly, beyond that `permutations` random ones
ALPHA = 0.05


@dataclass(frozen=True)
class Contrast:
    model: str
    learner: str
    dataset: str
    scorer: str | None
    estimate: str | None   # the ntk scorer's head estimate; None for the others
    config_id: str | None
    seed: int | str | None  # "pooled" for a seed-pooled kernel
    contrast: str       # what A and B are
    n_skills: int
    n_pairs_a: int
    n_pairs_b: int
    mean_a: float       # mean of A pairs once train- and test-skill effects are removed
    mean_b: float
    diff: float         # mean_a - mean_b: the two-way model's a - b
    raw_diff: float     # plain mean of A pairs - mean of B pairs, confounded with skill effects; for comparison
    ci_low: float       # 95% over skills: delete-one-skill jackknife
    ci_high: float
    p_value: float      # permutation test of diff = 0
    min_p: float        # smallest p this layout of skills can reach with any kernel
    one_label_p: float  # smallest p when transfer follows one label alone (arith: the larger of
                        # operation alone and format alone)
    relabellings: str   # how p was computed: all relabellings, or how many random ones
    q_diff: float       # the contrast from per-question deltas (equals diff when they are the kernel's)
    q_ci_low: float     # 95% over questions, skills fixed
    q_ci_high: float
    n_questions: int    # questions per test skill used (the smallest count)
    verdict: str        # one line: which structure the learning follows and how sure

    def row(self) -> dict:
        return asdict(self)


STRUCTURE_COLUMNS = list(Contrast.__dataclass_fields__)


@dataclass(frozen=True)
class Layout:
    """The labels of a kernel's skills: group (operation or domain) and surface (arith's format, else None)."""
    group: np.ndarray
    surface: np.ndarray | None
    what: str

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        return pair_masks(self.group, self.surface)

    def without(self, k: int) -> Layout:
        keep = np.arange(len(self.group)) != k
        return Layout(self.group[keep], None if self.surface is None else self.surface[keep], self.what)


def layout_of(skills: list[str], dataset: str | None) -> Layout:
    """arith: "op/format" -> (operation, format); anything else: "domain/name" -> (domain, no surface)."""
    groups = [s.split("/", 1)[0] for s in skills]
    effects = "; train- and test-skill effects removed"
    if dataset == "arith":
        surfaces = [s.split("/", 1)[1] if "/" in s else s for s in skills]
        return Layout(_codes(groups), _codes(surfaces),
                      "same operation, other format (A) vs same format, other operation (B)" + effects)
    return Layout(_codes(groups), None, "same domain (A) vs other domains (B)" + effects)


def _codes(values: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return np.array([index[v] for v in values])


def pair_masks(group: np.ndarray, surface: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A and B as boolean n x n masks; both exclude the diagonal."""
    same_group = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(len(group), dtype=bool)
    if surface is None:
        return same_group & off_diagonal, ~same_group
    same_surface = surface[:, None] == surface[None, :]
    return same_group & ~same_surface, same_surface & ~same_group


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


def permutation_p(kernel: np.ndarray, layout: Layout, diff: float, permutations: int,
                  rng: np.random.Generator) -> tuple[float, str]:
    """Two-sided p of the observed a - b among relabellings of the skills, and how many were used.

    A relabelling moves a skill's group and surface together (they are one label). Up to ENUMERATE_UP_TO skills
    every distinct arrangement of A and B is evaluated once, weighted by how many of the n! relabellings give it;
    beyond that, `permutations` random relabellings. Arrangements for which the layout cannot separate a from b
    (possible only with missing entries) are left out of both counts.
    """
    n = len(layout.group)
    if n <= ENUMERATE_UP_TO:
        orders, weights = _arrangements(tuple(layout.group.tolist()),
                                        None if layout.surface is None else tuple(layout.surface.tolist()))
    else:
        orders = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
        weights = np.ones(permutations, dtype=np.int64)
    surface = None if layout.surface is None else layout.surface[orders]
    values = TwoWay(kernel).contrasts(layout.group[orders], surface)
    valid = ~np.isnan(values)
    # floating sums of the same entries in another order differ in the last bits: a tie is a tie
    extreme = int(weights[valid & (np.abs(values) >= abs(diff) - 1e-9 * max(1.0, abs(diff)))].sum())
    total = int(weights[valid].sum())
    if n <= ENUMERATE_UP_TO:  # the identity is among them, so extreme >= 1
        return extreme / total, f"all {total} relabellings ({int(valid.sum())} distinct)"
    return (1 + extreme) / (1 + total), f"{total} random relabellings"


@lru_cache(maxsize=64)
def _arrangements(group: tuple[int, ...], surface: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """One relabelling per distinct (A, B) arrangement of n! and how many relabellings give it.

    Two relabellings give the same A and B exactly when they induce the same partitions of the positions into
    groups and into surfaces; a partition is written canonically as, per position, the first position with the
    same label.
    """
    n = len(group)
    orders = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    keys = [_first_same(np.asarray(group)[orders])]
    if surface is not None:
        keys.append(_first_same(np.asarray(surface)[orders]))
    _, first, counts = np.unique(np.concatenate(keys, axis=1), axis=0, return_index=True, return_counts=True)
    return orders[first].astype(np.intp), counts.astype(np.int64)


def _first_same(labels: np.ndarray) -> np.ndarray:
    """(R, n) labels -> (R, n): for each position, the first position holding the same label."""
    return np.argmax(labels[:, :, None] == labels[:, None, :], axis=2).astype(np.int8)


def min_attainable_p(layout: Layout) -> float:
    """The smallest two-sided p any kernel can give with this layout (complete kernel, exact test).

    The observed labelling always ties with itself under every relabelling that leaves A and B as they are (the
    layout's automorphisms), and with its mirror under every one that swaps A and B (a - b -> b - a, same |.|);
    every other arrangement can be less extreme. So min p = (automorphisms + swaps) / n!.
    """
    same, swapped = _symmetries(layout)
    return (same + swapped) / math.factorial(len(layout.group))


def one_label_p(layout: Layout) -> float:
    """The p of a noise-free kernel whose transfer follows one label alone: for arith the larger of the values for
    "operation alone" and "format alone" (so both directions can be told apart below it); for domains, which
    have one label, min_attainable_p.

    Such a kernel is exactly r + c + beta * [same operation]. Every relabelling that keeps the partition into
    operations keeps that indicator, so gives the same a - b, and every one that turns the format partition into
    it gives b - a: they all tie with the observed. On a 3 x 2 grid "operation alone" ties 4 of its 60
    arrangements (p = 1/15) and "format alone" 6 (p = 1/10), though a kernel where operation and format pull
    opposite ways can reach 1/60.
    """
    if layout.surface is None:
        return min_attainable_p(layout)
    ways = []
    for label, other in ((layout.group, layout.surface), (layout.surface, layout.group)):
        keep = _partition_symmetries(label)
        onto = keep if _block_sizes(label) == _block_sizes(other) else 0
        ways.append(keep + onto)
    return max(ways) / math.factorial(len(layout.group))


def _block_sizes(labels: np.ndarray) -> list[int]:
    return sorted(Counter(labels.tolist()).values())


def _partition_symmetries(labels: np.ndarray) -> int:
    """Permutations that keep a partition: shuffle within blocks, and trade whole blocks of equal size."""
    sizes = _block_sizes(labels)
    return math.prod(math.factorial(s) for s in sizes) * math.prod(math.factorial(c) for c in Counter(sizes).values())


def _symmetries(layout: Layout) -> tuple[int, int]:
    """(relabellings that keep A and B, relabellings that swap them), counted from the labels' structure."""
    if layout.surface is None:
        # A is "same domain", B its complement: no relabelling turns one into the other (a union of cliques is
        # never isomorphic to its complement, a complete multipartite graph, for n >= 2)
        return _partition_symmetries(layout.group), 0
    incidence = np.zeros((layout.group.max() + 1, layout.surface.max() + 1), dtype=bool)
    incidence[layout.group, layout.surface] = True
    same = _isomorphisms(incidence, incidence)
    swapped = _isomorphisms(incidence.T, incidence) if incidence.shape[0] == incidence.shape[1] else 0
    return same, swapped


def _isomorphisms(source: np.ndarray, target: np.ndarray) -> int:
    """Pairs (row permutation, column permutation) that turn the 0/1 table `source` into `target`.

    A relabelling of arith skills that keeps "same operation" and "same format" maps operations to operations and
    formats to formats, so it is such a pair on the operation x format table of which skills exist. For each row
    permutation the column permutations that fit are counted: columns must map onto equal columns.
    """
    if source.shape[0] > source.shape[1]:
        return _isomorphisms(source.T, target.T)
    if source.shape[0] > ENUMERATE_UP_TO:   # at least 81 skills; only an upper bound is cheap: all pairs
        return math.factorial(source.shape[0]) * math.factorial(source.shape[1])
    wanted = Counter(map(bytes, target.T))
    count = 0
    for rows in itertools.permutations(range(source.shape[0])):
        columns = Counter(map(bytes, source[list(rows)].T))
        if columns == wanted:
            count += math.prod(math.factorial(k) for k in wanted.values())
    return count


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


def verdict_text(name: str, dataset: str | None, stats: dict) -> str:
    """One line: "<name>: " then the structure the learning follows, "no clear structure" or "inconclusive: ...".

    `stats` holds Contrast's statistics (diff, ci_*, p_value, min_p, one_label_p, q_*, n_skills, n_pairs_*).
    """
    deep, surface = ("the operation (deep)", "the surface format") if dataset == "arith" else \
        ("the domain (deep)", "no domain (cross-domain pairs gain more)")
    n = stats["n_skills"]
    if math.isnan(stats["diff"]):
        return (f"{name}: not enough pairs to compare: {n} skills cannot separate A from B once train- and "
                f"test-skill effects are removed ({stats['n_pairs_a']} A pairs, {stats['n_pairs_b']} B pairs)")
    size = f"A - B = {stats['diff']:+.3f} with train- and test-skill effects removed"
    over_skills = "" if math.isnan(stats["ci_low"]) else \
        f"; over skills [{stats['ci_low']:+.3f}, {stats['ci_high']:+.3f}]"
    over_questions = "; no per-question deltas for an interval over questions" if math.isnan(stats["q_ci_low"]) \
        else (f"; over questions, these skills fixed: {stats['q_diff']:+.3f} "
              f"[{stats['q_ci_low']:+.3f}, {stats['q_ci_high']:+.3f}]")
    if stats["min_p"] >= ALPHA:
        return (f"{name}: inconclusive: {n} skills cannot reach p < {ALPHA:g} (smallest attainable "
                f"p = {stats['min_p']:.3g}); {size}{over_questions}{over_skills}")
    tested = f"{size}, permutation p = {stats['p_value']:.3g}{over_skills}{over_questions}"
    if stats["p_value"] < ALPHA:
        return f"{name}: learning follows {deep if stats['diff'] > 0 else surface}: {tested}"
    if stats["one_label_p"] >= ALPHA:
        return (f"{name}: inconclusive: {n} skills cannot reach p < {ALPHA:g} when transfer follows the operation "
                f"or the format alone (smallest attainable p = {stats['one_label_p']:.3g}; "
                f"{stats['min_p']:.3g} needs both, pulling opposite ways); {tested}")
    return f"{name}: no clear structure: {tested}"


def contrast_of(kernel: np.ndarray, skills: list[str], dataset: str | None, seed: int = 0, permutations: int = 2000,
                per_question: dict[tuple[str, str], dict] | None = None, level: float = 0.95) -> dict:
    """Contrast's statistics (every field but the identity and the verdict) for one square kernel over `skills`;
    its diagonal is ignored."""
    layout = layout_of(skills, dataset)
    fit = two_way_fit(kernel, layout)
    p, how, skills_ci = math.nan, "none", (math.nan, math.nan)
    if not math.isnan(fit.diff):
        p, how = permutation_p(kernel, layout, fit.diff, permutations, np.random.default_rng(seed))
        skills_ci = skill_jackknife(kernel, layout, level)
    # random relabellings cannot give less than 1 / (permutations + 1)
    floor = 1.0 / (permutations + 1) if len(skills) > ENUMERATE_UP_TO else 0.0
    q = (math.nan, math.nan, math.nan, 0)
    if per_question and fit.weights is not None:
        q = question_contrast(fit.weights, skills, per_question, level)
    return {"contrast": layout.what, "n_skills": len(skills), "n_pairs_a": fit.n_a, "n_pairs_b": fit.n_b,
            "mean_a": fit.mean_a, "mean_b": fit.mean_b, "diff": fit.diff, "raw_diff": fit.raw_diff,
            "ci_low": skills_ci[0], "ci_high": skills_ci[1], "p_value": p,
            "min_p": max(min_attainable_p(layout), floor), "one_label_p": max(one_label_p(layout), floor),
            "relabellings": how, "q_diff": q[0], "q_ci_low": q[1], "q_ci_high": q[2], "n_questions": q[3]}


def structure_stats(rows: list[dict], questions: list[dict] | None = None, seed: int = 0, permutations: int = 2000,
                    level: float = 0.95) -> list[Contrast]:
    """One contrast per kernel: rows grouped by IDENTITY (a missing key counts as None), never merged across it.

    `rows` carry train_skill, test_skill and delta (kernel.csv's columns); a later row for the same pair replaces
    an earlier one (a rerun). `questions` (optional) carry the identity keys, train_skill, test_skill, id and the
    per-question delta, for the interval over questions.
    """
    tables: dict[tuple, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in rows:
        pair = tables[_identity(r)]
        pair[(r["train_skill"], r["test_skill"])] = _number(r.get("delta"))  # NaN: a missing entry
    per_question: dict[tuple, dict[tuple[str, str], dict]] = defaultdict(lambda: defaultdict(dict))
    for q in questions or []:
        if math.isfinite(_number(q.get("delta"))):
            per_question[_identity(q)][(q["train_skill"], q["test_skill"])][q["id"]] = float(q["delta"])
    out = []
    for identity, pairs in tables.items():
        skills = list(dict.fromkeys([t for _, t in pairs] + [t for t, _ in pairs]))
        kernel = np.full((len(skills), len(skills)), np.nan)
        for (train, test), value in pairs.items():
            kernel[skills.index(train), skills.index(test)] = value
        np.fill_diagonal(kernel, np.nan)  # the diagonal belongs to neither A nor B
        keys = dict(zip(IDENTITY, identity))
        stats = contrast_of(kernel, skills, keys["dataset"], seed, permutations, per_question.get(identity), level)
        verdict = verdict_text(f"{keys['model']} {keys['learner']}", keys["dataset"], stats)
        out.append(Contrast(**keys, **stats, verdict=verdict))
    return out


def _identity(row: dict) -> tuple:
    return tuple(row.get(k) for k in IDENTITY)


def _number(value) -> float:
    """A delta as a float; anything that is not a finite number (None, "", NaN) becomes NaN, a missing entry."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
