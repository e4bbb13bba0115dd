"""Simple to complex on arith: how training on elementary operations moves composite ones and back, per kernel, with
intervals over questions and over skills; written to report/transfer.csv and one summary line per kernel.

arith's operations are elementary (add, sub, mul, div) or composite (ops: two operations in one expression, cplex:
several). A skill's operation is read from the skill groups its cells recorded (the "operation" axis), else from its
name ("<op>/<format>"); only skills of a data set named arith are classified (the train side when `dataset` is
arith, the test side when `test_dataset` is, or `dataset` for kernels that record no test data set).

Rows per kernel (one value of every TABLE_IDENTITY column) and direction, each a plain mean of kernel entries:
- blocks: elementary->composite, composite->elementary, and as references elementary->elementary and
  composite->composite, both off the diagonal (a skill with itself is not transfer);
- per operation, for the two cross directions only: the train kind against each test operation (elementary -> ops,
  elementary -> cplex, composite -> add, ...) and each train operation against the test kind (add -> composite,
  ..., cplex -> elementary). Formats are averaged over throughout: an operation's row holds every format of it.
A kernel gets rows only when it has an entry in a cross block; a sweep with none (no composite skills in the grid,
another data set) gets no transfer.csv and no summary line.

Two intervals, for two questions:
- q_ci_*: over questions, these skills fixed. The block mean is a linear contrast of kernel entries (weight
  1 / n_entries on each), so ntkeval.report.two_way.question_contrast gives it from per-question deltas: a
  stratified t interval over test questions that honours every train row sharing its test skill's questions. The
  seed-pooled kernel has no per-question deltas of its own: NaN there.
- skill_ci_*: over skills (would other skills of these kinds show it?), when the block has at least MIN_SKILLS
  train and MIN_SKILLS test skills: a delete-one-skill jackknife (leaving a skill out drops every block entry it is
  the train or the test skill of), t on min(train skills, test skills) - 1 degrees of freedom. For a cross block the
  train and test skills are disjoint and this variance is at least the sum of the row and column jackknife
  variances, which covers a crossed random-effects kernel (train- and test-skill effects) conservatively; for a
  reference block the same skill is row and column, and leaving it out whole carries their correlation.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ntkeval.data.base import SkillGroups
from ntkeval.report.structure import groups_key, number_or_nan
from ntkeval.report.tables import TABLE_IDENTITY
from ntkeval.report.two_way import question_contrast
from ntkeval.stats.intervals import t_quantile

DATASET = "arith"
ELEMENTARY = ("add", "sub", "mul", "div")  # arith's operations (ntkeval.data.arith.OPS), split by kind
COMPOSITE = ("ops", "cplex")
KIND = {**{op: "elementary" for op in ELEMENTARY}, **{op: "composite" for op in COMPOSITE}}
CROSS = (("elementary", "composite"), ("composite", "elementary"))
REFERENCE = (("elementary", "elementary"), ("composite", "composite"))
MIN_SKILLS = 3  # fewer train or test skills in a block: no interval over skills (a t on 1 df says nothing)


@dataclass(frozen=True)
class TransferRow:
    identity: dict            # the kernel's TABLE_IDENTITY columns
    direction: str            # "elementary->composite", ..., the block this row belongs to
    train_group: str          # "elementary"/"composite" or an operation ("add")
    test_group: str
    n_entries: int            # kernel entries averaged
    n_train_skills: int
    n_test_skills: int
    delta: float              # mean of those entries
    q_delta: float            # the same mean from per-question deltas (questions common to its train rows)
    q_ci_low: float           # 95% over questions, skills fixed
    q_ci_high: float
    n_questions: int          # questions per test skill used (the smallest count)
    skill_ci_low: float       # 95% over skills (delete-one-skill jackknife); NaN under MIN_SKILLS a side
    skill_ci_high: float

    def row(self) -> dict:
        fields = asdict(self)
        return {**fields.pop("identity"), **fields}


TRANSFER_COLUMNS = [*TABLE_IDENTITY, *(f for f in TransferRow.__dataclass_fields__ if f != "identity")]


def operation_of(skill: str, groups: SkillGroups | None) -> str | None:
    """The skill's arith operation: its recorded "operation" group, else the name before the slash."""
    recorded = groups.of_skill.get(skill, {}).get("operation") if groups is not None else None
    return recorded if recorded is not None else skill.split("/")[0]


def _is_arith(identity: dict, side: str, test_dataset: str | None) -> bool:
    if side == "test" and test_dataset is not None:
        return test_dataset == DATASET
    return identity.get("dataset") == DATASET


def transfer_rows(rows: list[dict], questions: list[dict] | None, groups: Mapping[tuple, SkillGroups],
                  level: float = 0.95) -> list[TransferRow]:
    """The transfer rows of every arith kernel among `rows` (kernel.csv's: identity, train_skill, test_skill,
    delta; a later row of a pair replaces an earlier one); `questions` as ntkeval.report.pooling.question_rows
    gives them; `groups` as ntkeval.report.recorded_groups.kernel_groups gives them (keyed by groups_key)."""
    kernels: dict[tuple, dict[tuple[str, str], float]] = defaultdict(dict)
    test_datasets: dict[tuple, str | None] = {}  # read from the rows, whether or not it is an identity column
    for r in rows:
        kernels[_identity(r)][(str(r["train_skill"]), str(r["test_skill"]))] = number_or_nan(r.get("delta"))
        test_datasets[_identity(r)] = r.get("test_dataset")
    per_question: dict[tuple, dict[tuple[str, str], dict]] = defaultdict(lambda: defaultdict(dict))
    for q in questions or []:
        if math.isfinite(number_or_nan(q.get("delta"))):
            per_question[_identity(q)][(str(q["train_skill"]), str(q["test_skill"]))][q["id"]] = float(q["delta"])
    out = []
    for key, kernel in kernels.items():
        identity = dict(zip(TABLE_IDENTITY, key))
        found = groups.get(groups_key(identity))
        ops = {side: {} for side in ("train", "test")}
        for train, test in kernel:
            for side, skill in (("train", train), ("test", test)):
                op = operation_of(skill, found) if _is_arith(identity, side, test_datasets[key]) else None
                ops[side][skill] = op if op in KIND else None
        entries = [(a, b, v) for (a, b), v in kernel.items()
                   if math.isfinite(v) and ops["train"][a] and ops["test"][b]]
        out += _kernel_rows(identity, entries, ops, per_question.get(key, {}), level)
    return out


def _kernel_rows(identity: dict, entries: list[tuple[str, str, float]], ops: dict, per_question: dict,
                 level: float) -> list[TransferRow]:
    kind = {side: {s: KIND[o] for s, o in ops[side].items() if o} for side in ops}
    if not any((kind["train"][a], kind["test"][b]) in CROSS for a, b, _ in entries):
        return []
    out = []
    for pair in CROSS + REFERENCE:
        block = [e for e in entries if (kind["train"][e[0]], kind["test"][e[1]]) == pair and e[0] != e[1]]
        direction = "->".join(pair)
        out += [_block_row(identity, direction, *pair, block, per_question, level)] if block else []
        if pair not in CROSS:
            continue
        for test_op in (COMPOSITE if pair[1] == "composite" else ELEMENTARY):
            part = [e for e in block if ops["test"][e[1]] == test_op]
            out += [_block_row(identity, direction, pair[0], test_op, part, per_question, level)] if part else []
        for train_op in (ELEMENTARY if pair[0] == "elementary" else COMPOSITE):
            part = [e for e in block if ops["train"][e[0]] == train_op]
            out += [_block_row(identity, direction, train_op, pair[1], part, per_question, level)] if part else []
    return out


def _block_row(identity: dict, direction: str, train_group: str, test_group: str,
               entries: list[tuple[str, str, float]], per_question: dict, level: float) -> TransferRow:
    trains, tests = list(dict.fromkeys(a for a, _, _ in entries)), list(dict.fromkeys(b for _, b, _ in entries))
    skills = list(dict.fromkeys(trains + tests))
    weights = np.zeros((len(skills), len(skills)))
    for a, b, _ in entries:
        weights[skills.index(a), skills.index(b)] = 1.0 / len(entries)
    q = question_contrast(weights, skills, per_question, level) if per_question else (math.nan,) * 3 + (0,)
    low, high = skill_interval(entries, level)
    return TransferRow(identity, direction, train_group, test_group, len(entries), len(trains), len(tests),
                       float(np.mean([v for _, _, v in entries])), *q, low, high)


def skill_interval(entries: list[tuple[str, str, float]], level: float = 0.95) -> tuple[float, float]:
    """Delete-one-skill jackknife interval of the mean of (train, test, value) entries; NaN under MIN_SKILLS a side."""
    trains, tests = {a for a, _, _ in entries}, {b for _, b, _ in entries}
    if min(len(trains), len(tests)) < MIN_SKILLS:
        return math.nan, math.nan
    skills = sorted(trains | tests)
    values = np.array([v for _, _, v in entries])
    left_out = []
    for skill in skills:
        keep = np.array([a != skill and b != skill for a, b, _ in entries])
        if not keep.any():
            return math.nan, math.nan
        left_out.append(values[keep].mean())
    left_out = np.array(left_out)
    n = len(skills)
    se = math.sqrt((n - 1) / n * float(((left_out - left_out.mean()) ** 2).sum()))
    half = t_quantile(level, min(len(trains), len(tests)) - 1) * se
    mean = float(values.mean())
    return mean - half, mean + half


def summary_lines(rows: list[TransferRow]) -> list[str]:
    """One line per kernel with transfer rows: each cross block against its reference block, with intervals."""
    blocks: dict[tuple, dict[str, TransferRow]] = defaultdict(dict)
    for r in rows:
        if (r.train_group, r.test_group) in CROSS + REFERENCE:
            blocks[tuple(r.identity.get(k) for k in TABLE_IDENTITY)][r.direction] = r
    lines = []
    for key, found in blocks.items():
        name = " ".join(_shown(k, v) for k, v in zip(TABLE_IDENTITY, key)
                        if v is not None and k not in ("dataset", "test_dataset") and (k, v) != ("format", "direct"))
        parts = []
        for train, test in CROSS:
            cross, reference = found.get(f"{train}->{test}"), found.get(f"{train}->{train}")
            if cross is None:
                continue
            text = f"training on {train} operations moves {test} ones by {_with_interval(cross)}"
            parts.append(text + (f", vs {_with_interval(reference)} among {train} ones" if reference else ""))
        lines.append(f"- {name}: " + "; ".join(parts))
    return ["## Simple to complex (arith)", "", *lines, ""] if lines else []


def _shown(key: str, value) -> str:
    return f"{key.replace('_id', '')} {value}" if key in ("config_id", "seed") else str(value)


def _with_interval(row: TransferRow) -> str:
    if math.isfinite(row.q_ci_low):
        return f"{row.q_delta:+.3f} [{row.q_ci_low:+.3f}, {row.q_ci_high:+.3f}] over questions"
    if math.isfinite(row.skill_ci_low):
        return f"{row.delta:+.3f} [{row.skill_ci_low:+.3f}, {row.skill_ci_high:+.3f}] over skills"
    return f"{row.delta:+.3f} (no interval)"


def write_transfer(rows: list[dict], questions: list[dict] | None, groups: Mapping[tuple, SkillGroups],
                   out_dir: Path | str) -> list[str]:
    """Write out_dir/transfer.csv when some arith kernel has a cross block; its summary.md lines (else [])."""
    found = transfer_rows(rows, questions, groups)
    if not found:
        return []
    with open(Path(out_dir) / "transfer.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRANSFER_COLUMNS)
        writer.writeheader()
        writer.writerows(r.row() for r in found)
    return summary_lines(found)


def _identity(row: Mapping) -> tuple:
    return tuple(row.get(k) for k in TABLE_IDENTITY)
