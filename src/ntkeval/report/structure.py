"""Deep versus surface: does learning transfer along the operation (or domain) or along the surface format?

One contrast per kernel (one IDENTITY), on the skill groups its cells recorded (ntkeval.data.base.SkillGroups; the
report never asks which data set it was). With a surface axis (arith's "op/format": operation deep, format surface):
do pairs that share the deep group but not the surface (A) gain more than pairs that share the surface but not the
deep group (B)? Without one (KhanSkill's domains): same-group pairs off the diagonal (A) against the others (B).
The pieces: layout.py (the labels), two_way.py (the model and its intervals), relabelling.py (p-values).

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

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from ntkeval.data.base import SkillGroups
from ntkeval.report.layout import layout_of
from ntkeval.report.relabelling import (
    ENUMERATE_UP_TO,
    min_attainable_p,
    one_label_p,
    permutation_p,
)
from ntkeval.report.two_way import question_contrast, skill_jackknife, two_way_fit

# what makes two kernels different kernels: rows differing in any of these are never merged (the report's tables
# use the same tuple, ntkeval.report.tables.TABLE_IDENTITY; a test keeps them equal)
IDENTITY = ("model", "learner", "dataset", "test_dataset", "format", "scorer", "estimate", "config_id", "seed")
# what a kernel's skill groups are looked up by: they do not depend on the seed, so the seed-pooled kernel shares them
GROUPS_KEY = tuple(k for k in IDENTITY if k != "seed")
ALPHA = 0.05


@dataclass(frozen=True)
class Contrast:
    model: str
    learner: str
    dataset: str
    test_dataset: str | None  # where the test skills come from (pair.test_dataset); = dataset usually
    format: str | None     # the answer format (direct, cot, pot, ...)
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
NO_GROUPS = "none: no skill groups recorded for this kernel"

def verdict_text(name: str, groups: SkillGroups | None, stats: dict) -> str:
    """One line: "<name>: " then the structure the learning follows, "no clear structure" or "inconclusive: ...".

    `stats` holds Contrast's statistics (diff, ci_*, p_value, min_p, one_label_p, q_*, n_skills, n_pairs_*); the
    words come from the axes of `groups` ("the operation (deep)", "the surface format").
    """
    if groups is None:
        return f"{name}: deep versus surface not compared: no skill groups recorded for this kernel"
    deep = f"the {groups.deep} (deep)"
    surface = f"the surface {groups.surface}" if groups.surface else \
        f"no {groups.deep} (cross-{groups.deep} pairs gain more)"
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
        return (f"{name}: inconclusive: {n} skills cannot reach p < {ALPHA:g} when transfer follows the "
                f"{groups.deep} or the {groups.surface} alone (smallest attainable p = {stats['one_label_p']:.3g}; "
                f"{stats['min_p']:.3g} needs both, pulling opposite ways); {tested}")
    return f"{name}: no clear structure: {tested}"


def contrast_of(kernel: np.ndarray, skills: list[str], groups: SkillGroups | None, seed: int = 0,
                permutations: int = 2000, per_question: dict[tuple[str, str], dict] | None = None,
                level: float = 0.95) -> dict:
    """Contrast's statistics (every field but the identity and the verdict) for one square kernel over `skills`;
    its diagonal is ignored. Without groups (or groups that miss a skill) every statistic is NaN."""
    if groups is None or any(s not in groups.of_skill for s in skills):
        nan = math.nan
        return {"contrast": NO_GROUPS, "n_skills": len(skills), "n_pairs_a": 0, "n_pairs_b": 0, "mean_a": nan,
                "mean_b": nan, "diff": nan, "raw_diff": nan, "ci_low": nan, "ci_high": nan, "p_value": nan,
                "min_p": nan, "one_label_p": nan, "relabellings": "none", "q_diff": nan, "q_ci_low": nan,
                "q_ci_high": nan, "n_questions": 0}
    layout = layout_of(skills, groups)
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


def structure_stats(rows: list[dict], groups: Mapping[tuple, SkillGroups], questions: list[dict] | None = None,
                    seed: int = 0, permutations: int = 2000, level: float = 0.95) -> list[Contrast]:
    """One contrast per kernel: rows grouped by IDENTITY (a missing key counts as None), never merged across it.

    `groups` maps groups_key(row) to the skill groups the kernel's cells recorded; a kernel without any gets NaN
    statistics and a verdict that says so.

    `rows` carry train_skill, test_skill and delta (kernel.csv's columns); a later row for the same pair replaces
    an earlier one (a rerun). `questions` (optional) carry the identity keys, train_skill, test_skill, id and the
    per-question delta, for the interval over questions.
    """
    tables: dict[tuple, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in rows:
        pair = tables[_identity(r)]
        pair[(r["train_skill"], r["test_skill"])] = number_or_nan(r.get("delta"))  # NaN: a missing entry
    per_question: dict[tuple, dict[tuple[str, str], dict]] = defaultdict(lambda: defaultdict(dict))
    for q in questions or []:
        if math.isfinite(number_or_nan(q.get("delta"))):
            per_question[_identity(q)][(q["train_skill"], q["test_skill"])][q["id"]] = float(q["delta"])
    out = []
    for identity, pairs in tables.items():
        skills = list(dict.fromkeys([t for _, t in pairs] + [t for t, _ in pairs]))
        kernel = np.full((len(skills), len(skills)), np.nan)
        for (train, test), value in pairs.items():
            kernel[skills.index(train), skills.index(test)] = value
        np.fill_diagonal(kernel, np.nan)  # the diagonal belongs to neither A nor B
        keys = dict(zip(IDENTITY, identity))
        found = groups.get(groups_key(keys))
        found = found if found is not None and all(s in found.of_skill for s in skills) else None
        stats = contrast_of(kernel, skills, found, seed, permutations, per_question.get(identity), level)
        shown = f" {keys['format']}" if keys.get("format") not in (None, "direct") else ""  # kernels per format
        verdict = verdict_text(f"{keys['model']} {keys['learner']}{shown}", found, stats)
        out.append(Contrast(**keys, **stats, verdict=verdict))
    return out


def _identity(row: dict) -> tuple:
    return tuple(row.get(k) for k in IDENTITY)


def groups_key(row: Mapping) -> tuple:
    """What a kernel's skill groups are filed under (a row of it, a cell of it, or its identity as a dict)."""
    return tuple(row.get(k) for k in GROUPS_KEY)


def number_or_nan(value) -> float:
    """A delta as a float; anything that is not a finite number (None, "", NaN) becomes NaN, a missing entry."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
