"""Two kernels over the same skills compared along one axis (learner, model, format or scorer): the specificity of
each, the difference of specificities, kernel similarity (CKA), a difference heatmap and one verdict per pair,
written to comparisons.csv and summary.md. Which kernels pair is ntkeval.report.kernel_pairs' to say.

The statistics (ntkeval.stats.kernels) run on the entries both kernels have (the common mask), so
diff = specificity_a - specificity_b exactly; a note says when entries are missing. Intervals are over test
questions with the skills fixed: a kernel's specificity from its per-question deltas (two_way.question_contrast)
where it has them, else from its entries' intervals (stats.kernels.entry_interval). The difference is paired
question by question when both kernels scored the same questions ("paired questions": one stratified mean of
z = sum_i w[i, j] (d_A[i, j, q] - d_B[i, j, q])), else the two intervals are combined by MOVER (Zou and Donner).
diff_skill_ci_* is over skills instead (delete-one-skill jackknife). p_value relabels the test skills of the
difference kernel A - B: exact when the kernels differ only by additive train- and test-skill effects plus noise,
which a tuned learner's larger effects on some test skills do not disturb; p_signflip is the sign-flip test over
the rows' specificity differences, valid whenever equal specificity leaves each row's difference symmetric, but
conservative when the kernels' test-skill effects differ. A verdict claims a direction only when the interval
excludes 0 and p_value < ALPHA.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ntkeval.report.difference_heatmap import difference_figure
from ntkeval.report.kernel_pairs import (
    Kernel,
    axis_value,
    comparable_pairs,
    context_of,
    shared_columns,
    square_kernels,
)
from ntkeval.report.tables import TABLE_IDENTITY, safe_name
from ntkeval.report.two_way import question_contrast
from ntkeval.stats import kernels as stats

ALPHA = 0.05
SHARED = tuple(k for k in TABLE_IDENTITY if k != "config_id")   # a row's identity columns; the axis's stay empty
_B = "\x00b:"   # tags kernel B's train skills when both kernels' questions go into one question_contrast


@dataclass
class Comparison:
    shared: dict                    # the identity both kernels have (the axis's columns None)
    axis: str
    a: str
    b: str
    config_id_a: str | None
    config_id_b: str | None
    n_skills: int
    specificity_a: float            # mean diagonal - mean off-diagonal of A
    specificity_a_ci_low: float     # over questions (see interval_method)
    specificity_a_ci_high: float
    specificity_a_p: float          # one-sided (diagonal above off-diagonal), relabelling A's test skills
    specificity_b: float
    specificity_b_ci_low: float
    specificity_b_ci_high: float
    specificity_b_p: float
    diff: float                     # specificity_a - specificity_b
    diff_ci_low: float
    diff_ci_high: float
    p_value: float                  # two-sided, relabelling the test skills of A - B
    interval_method: str            # "paired questions", or "MOVER of <A's> and <B's> intervals"
    p_signflip: float               # two-sided, sign flips of the rows' specificity differences
    diff_skill_ci_low: float        # over skills: delete-one-skill jackknife of diff
    diff_skill_ci_high: float
    specificity_scaled_a: float     # specificity / sd of the kernel's entries (no interval)
    specificity_scaled_b: float
    diff_scaled: float
    cka: float                      # linear CKA, on the skills both kernels have complete
    cka_p: float                    # one-sided, joint relabellings of B's skills
    n_questions: int                # questions per test skill behind the question-level intervals (smallest; 0: none)
    notes: str
    verdict: str
    image: str | None = field(default=None, repr=False)   # the difference heatmap's file, once drawn

    def row(self) -> dict:
        values = asdict(self)
        del values["shared"], values["image"]
        return {**{k: self.shared.get(k) for k in SHARED}, **values}

    def context(self) -> str:
        """What the two kernels share: "smollm2 · arith · direct · exact · seed 0"."""
        return context_of(self.shared)

    def line(self) -> str:
        return f"{self.context()}: {self.verdict}"


COMPARISON_COLUMNS = [*SHARED, *(k for k in Comparison.__dataclass_fields__ if k not in ("shared", "image"))]


def _aligned(a: Kernel, b: Kernel) -> tuple[np.ndarray, ...]:
    """B's values, lows and highs in A's skill order."""
    order = [b.skills.index(s) for s in a.skills]
    return tuple(m[np.ix_(order, order)] for m in (b.values, b.low, b.high))


def _interval(weights, values, low, high, per_question, skills, level) -> tuple[tuple[float, float], str, int]:
    """A kernel's interval for sum(W * K): over its questions if it has them all, else from its entries'."""
    q = question_contrast(weights, skills, per_question, level) if per_question else (math.nan,) * 3 + (0,)
    if math.isfinite(q[1]):
        return (q[1], q[2]), "questions", q[3]
    return stats.entry_interval(weights, values, low, high), "entries", 0


def paired_contrast(weights, skills, per_question_a, per_question_b, level=0.95) -> tuple[float, float, float, int]:
    """sum(W * (A - B)) over the questions both kernels scored: question_contrast over 2n train skills (B's
    tagged) with weights +W for A's entries and -W for B's, so each question's z is paired across A and B. Only when
    both kernels scored the same questions for every weighted entry (else NaN: the contrast over shared questions
    would estimate something else than the kernels' difference, e.g. two configurations with different n_test)."""
    n = len(skills)
    for i, j in zip(*np.nonzero(weights)):
        if set(per_question_a.get((skills[i], skills[j]), {})) != set(per_question_b.get((skills[i], skills[j]), {})):
            return math.nan, math.nan, math.nan, 0
    both = np.zeros((2 * n, 2 * n))
    both[:n, :n], both[n:, :n] = weights, -weights
    tagged = {(_B + train, test): ids for (train, test), ids in per_question_b.items()}
    return question_contrast(both, skills + [_B + s for s in skills], {**per_question_a, **tagged}, level)


def _common_complete(ka: np.ndarray, kb: np.ndarray) -> np.ndarray:
    """Indices of the skills kept for CKA: drop the skill with the most missing entries until none is missing."""
    keep = list(range(ka.shape[0]))
    while keep:
        sub = np.ix_(keep, keep)
        missing = np.isnan(ka[sub]) | np.isnan(kb[sub])
        if not missing.any():
            break
        keep.pop(int(np.argmax(missing.sum(axis=0) + missing.sum(axis=1))))
    return np.array(keep, dtype=np.intp)


def compare(a: Kernel, b: Kernel, axis: str, seed: int = 0, permutations: int = 2000, level: float = 0.95
            ) -> Comparison:
    """Every statistic of comparisons.csv for kernels a and b (same skills) along `axis`."""
    skills, n = a.skills, len(a.skills)
    b_values, b_low, b_high = _aligned(a, b)
    common = ~np.isnan(a.values) & ~np.isnan(b_values)
    ka, kb = np.where(common, a.values, np.nan), np.where(common, b_values, np.nan)
    notes = [] if common.all() else [f"{int((~common).sum())} of {n * n} entries missing in either kernel: every "
                                     f"statistic uses the {int(common.sum())} both have"]
    weights = stats.specificity_weights(common)
    if weights is None:
        weights = np.zeros((n, n))
        notes.append("no diagonal or no off-diagonal entry in common: nothing to compare")
    ci_a, how_a, q_a = _interval(weights, ka, a.low, a.high, a.per_question, skills, level)
    ci_b, how_b, q_b = _interval(weights, kb, b_low, b_high, b.per_question, skills, level)
    s_a, s_b = stats.specificity(ka), stats.specificity(kb)
    paired = paired_contrast(weights, skills, a.per_question, b.per_question, level)
    if math.isfinite(paired[1]):
        diff_ci, method, n_questions = (paired[1], paired[2]), "paired questions", paired[3]
    else:
        diff_ci = stats.mover_difference(s_a, ci_a, s_b, ci_b)
        method, n_questions = f"MOVER of {how_a} and {how_b} intervals", min(q_a, q_b)
    keep = _common_complete(ka, kb)
    if len(keep) < n:
        notes.append(f"CKA on the {len(keep)} of {n} skills complete in both")
    similar = stats.cka_test(ka[np.ix_(keep, keep)], kb[np.ix_(keep, keep)], permutations, seed) \
        if len(keep) >= 3 else stats.PermutationTest(math.nan, math.nan, math.nan, "none")
    flips = stats.sign_flip_test(stats.row_specificities(ka) - stats.row_specificities(kb), permutations, seed)
    jackknife = stats.skill_jackknife(ka - kb, stats.specificity, level)
    scaled_a, scaled_b = stats.scaled_specificity(ka), stats.scaled_specificity(kb)
    found = Comparison(
        shared={k: (a.value(k) if k in shared_columns(axis) else None) for k in SHARED}, axis=axis,
        a=axis_value(a, axis), b=axis_value(b, axis), config_id_a=a.value("config_id"),
        config_id_b=b.value("config_id"), n_skills=n,
        specificity_a=s_a, specificity_a_ci_low=ci_a[0], specificity_a_ci_high=ci_a[1],
        specificity_a_p=stats.specificity_test(ka, permutations, seed).p_greater,
        specificity_b=s_b, specificity_b_ci_low=ci_b[0], specificity_b_ci_high=ci_b[1],
        specificity_b_p=stats.specificity_test(kb, permutations, seed).p_greater,
        diff=s_a - s_b, diff_ci_low=diff_ci[0], diff_ci_high=diff_ci[1],
        p_value=stats.specificity_test(ka - kb, permutations, seed).p_two_sided, interval_method=method,
        p_signflip=flips.p_two_sided, diff_skill_ci_low=jackknife[0], diff_skill_ci_high=jackknife[1],
        specificity_scaled_a=scaled_a, specificity_scaled_b=scaled_b, diff_scaled=scaled_a - scaled_b,
        cka=similar.statistic, cka_p=similar.p_greater, n_questions=n_questions, notes="; ".join(notes), verdict="")
    found.verdict = verdict_text(found, stats.min_p(n, permutations))
    return found


def verdict_text(c: Comparison, smallest_p: float) -> str:
    """One line: "<a> is more (less) skill-specific than <b> by X [low, high] (p = ...)" when the interval excludes 0
    and p < ALPHA agree, else "no clear difference in skill-specificity ...", then the CKA sentence."""
    if math.isnan(c.diff):
        return f"{c.a} and {c.b} not compared: no diagonal or off-diagonal entries in common"
    p = f"p = {c.p_value:.2g}"
    clear = c.p_value < ALPHA and (c.diff_ci_low > 0 or c.diff_ci_high < 0)
    if clear and c.diff > 0:
        text = f"{c.a} is more skill-specific than {c.b} by {_num(c.diff)} {_ci(c.diff_ci_low, c.diff_ci_high)} ({p})"
    elif clear:  # magnitudes: "less ... by 0.120 [0.050, 0.190]"
        text = (f"{c.a} is less skill-specific than {c.b} by {_num(-c.diff, '')} "
                f"{_ci(-c.diff_ci_high, -c.diff_ci_low, '')} ({p})")
    else:
        reach = f"; {c.n_skills} skills cannot reach p < {ALPHA:g}" if smallest_p >= ALPHA else ""
        text = (f"no clear difference in skill-specificity between {c.a} and {c.b}: {c.a} - {c.b} = {_num(c.diff)} "
                f"{_ci(c.diff_ci_low, c.diff_ci_high)} ({p}{reach})")
    if math.isnan(c.cka):
        return f"{text}; kernel similarity undefined (a kernel without interaction beyond skill effects)"
    return f"{text}; kernel similarity CKA = {c.cka:+.2f} (p = {c.cka_p:.2g})"


def difference_cells(a: Kernel, b: Kernel, seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """(A - B, low, high, paired) per entry, in A's skill order. Paired (True) where both kernels scored the same
    questions (at least two) for the entry: the mean of the per-question differences with stats.paired_difference's
    interval; else A's delta - B's with MOVER from the two entries' intervals. NaN where either entry is missing."""
    n = len(a.skills)
    b_values, b_low, b_high = _aligned(a, b)
    diff, low, high = (np.full((n, n), np.nan) for _ in range(3))
    paired = np.zeros((n, n), dtype=bool)
    for i, train in enumerate(a.skills):
        for j, test in enumerate(a.skills):
            if np.isnan(a.values[i, j]) or np.isnan(b_values[i, j]):
                continue
            qa, qb = a.per_question.get((train, test), {}), b.per_question.get((train, test), {})
            ids = sorted(set(qa), key=str)
            if len(ids) >= 2 and set(qa) == set(qb):
                diff[i, j], low[i, j], high[i, j] = stats.paired_difference(
                    [qa[q] for q in ids], [qb[q] for q in ids], seed, level)
                paired[i, j] = True
                continue
            diff[i, j] = a.values[i, j] - b_values[i, j]
            if not np.isnan([a.low[i, j], a.high[i, j], b_low[i, j], b_high[i, j]]).any():
                low[i, j], high[i, j] = stats.mover_difference(a.values[i, j], (a.low[i, j], a.high[i, j]),
                                                               b_values[i, j], (b_low[i, j], b_high[i, j]))
    return diff, low, high, paired


def image_name(a: Kernel, c: Comparison) -> str:
    """diff_<A's kernel file stem without "kernel_">__vs__<B's axis value>_<B's config_id>.png: unique per pair."""
    return f"diff_{a.table.file_stem().removeprefix('kernel_')}__vs__{safe_name(c.b)}_{safe_name(c.config_id_b)}.png"


@dataclass
class ComparisonReport:
    comparisons: list[Comparison]
    notes: list[str]                # pairs that could not be compared, and why
    pngs: list[Path]
    csv_path: Path | None           # None when nothing was compared and no axis was asked for

    def lines(self) -> list[str]:
        """For the terminal: one verdict per pair, then the notes."""
        return [c.line() for c in self.comparisons] + [f"note: {n}" for n in self.notes]

    def summary_lines(self) -> list[str]:
        """summary.md's section: per pair its verdict, difference heatmap and numbers; then the notes."""
        if not self.comparisons and not self.notes:
            return []
        lines = ["## Comparisons", ""]
        for c in self.comparisons:
            lines += [f"### {c.a} vs {c.b} · {context_of(c.shared)}", "", f"**{c.verdict}**", ""]
            lines += [f"![difference]({c.image})", ""] if c.image else []
            lines += ["| kernel | specificity | 95% CI | p | scaled |", "|---|---|---|---|---|",
                      f"| {c.a} | {_num(c.specificity_a)} | {_ci(c.specificity_a_ci_low, c.specificity_a_ci_high)} | "
                      f"{_p(c.specificity_a_p)} (one-sided) | {_num(c.specificity_scaled_a)} |",
                      f"| {c.b} | {_num(c.specificity_b)} | {_ci(c.specificity_b_ci_low, c.specificity_b_ci_high)} | "
                      f"{_p(c.specificity_b_p)} (one-sided) | {_num(c.specificity_scaled_b)} |",
                      f"| {c.a} − {c.b} | {_num(c.diff)} | {_ci(c.diff_ci_low, c.diff_ci_high)} "
                      f"({c.interval_method}) | {_p(c.p_value)}; sign flips {_p(c.p_signflip)} | "
                      f"{_num(c.diff_scaled)} |", ""]
            lines += [f"Over skills (delete-one-skill jackknife): {_ci(c.diff_skill_ci_low, c.diff_skill_ci_high)}. "
                      f"CKA {_num(c.cka)} (p = {_p(c.cka_p)}). {c.n_skills} skills"
                      + (f", {c.n_questions} questions per test skill" if c.n_questions else "")
                      + (f". {c.notes}." if c.notes else "."), ""]
        lines += [f"- note: {n}" for n in self.notes] + ([""] if self.notes else [])
        return lines


def _num(value: float, sign: str = "+") -> str:
    """+0.123; values below 0.001 (a tiny test model's) in two significant digits rather than as +0.000."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:{sign}.3f}" if value == 0 or abs(value) >= 5e-4 else f"{value:{sign}.2g}"


def _ci(low: float, high: float, sign: str = "+") -> str:
    return "n/a" if not (math.isfinite(low) and math.isfinite(high)) else f"[{_num(low, sign)}, {_num(high, sign)}]"


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2g}"


def write_comparisons(results: list[dict], questions: list[dict], out_dir: Path, axis: str | None = None,
                      seed: int = 0, permutations: int = 2000) -> ComparisonReport:
    """Compare the kernels of `results` (seed-pooled ones included) along `axis` (None: in-context learning against
    tuning, when the results hold both); write a difference heatmap per pair and comparisons.csv to `out_dir`
    (comparisons.csv also when `axis` was asked for and nothing could be compared, with the header alone)."""
    pairs, notes = comparable_pairs(square_kernels(results, questions), axis)
    found, pngs = [], []
    for a, b in pairs:
        c = compare(a, b, axis or "learner", seed, permutations)
        path = out_dir / image_name(a, c)
        figure = difference_figure(c.a, c.b, a.skills, difference_cells(a, b, seed), context_of(c.shared))
        figure.savefig(path, dpi=120)
        c.image = path.name
        found.append(c)
        pngs.append(path)
    csv_path = None
    if found or axis:
        csv_path = out_dir / "comparisons.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COMPARISON_COLUMNS)
            writer.writeheader()
            writer.writerows(c.row() for c in found)
    return ComparisonReport(found, notes, pngs, csv_path)
