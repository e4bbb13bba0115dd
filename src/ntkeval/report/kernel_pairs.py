"""Which kernels of a sweep are compared with which (ntkeval.report.comparisons): square kernels paired along an axis.

Pairing: two kernels pair when every TABLE_IDENTITY column is equal except the axis's (the scorer axis takes the
scorer's head estimate with it) and config_id, which hashes the learner, model and format settings and so must
differ. Seed-pooled kernels (seed "pooled") pair with each other like any seed. Two configurations of one axis
value (say two data set sizes under both learners) give every cross pair; config_id_a/b tell them apart.
Kernels are compared as squares over their test skills, rows of missing entries where a test skill has no train
cell; one with fewer than MIN_SKILLS such rows, or two with different test skills, get a note instead.
Without --compare the report compares in-context learning with tuning: an in-context learner against a tuned
one, both measured against a control of their own (icl-skill against tune-skill, not icl-standard against
tune-base), read from the learner class each cell recorded (learner_kind).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.report.tables import TABLE_IDENTITY, KernelTable, finite, kernel_tables

AXES = {"learner": ("learner",), "model": ("model",), "format": ("format",), "scorer": ("scorer", "estimate")}
MIN_SKILLS = 3
IN_CONTEXT, TUNED = "in-context", "tuned"


@dataclass
class Kernel:
    """A kernel read from the report's tables as a square over its test skills: entries, their intervals and
    per-question deltas; or, when it cannot be compared, why."""
    table: KernelTable
    kind: str                           # IN_CONTEXT, TUNED or "other"
    own_control: bool                   # measured against a control of its own, not the untouched model
    skills: list[str] = field(default_factory=list)
    values: np.ndarray | None = None    # n x n, NaN where missing
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    per_question: dict[tuple[str, str], dict] = field(default_factory=dict)  # (train, test) -> {id: delta}
    unusable: str | None = None         # why it cannot be compared ("only 2 skills (at least 3 needed)")

    def value(self, column: str):
        return getattr(self.table, column, None)


def learner_kind(result: dict) -> str:
    """IN_CONTEXT when the cell's learner class (config.learner._target_) is an in-context learner (demonstrations
    in the prompt), TUNED when it trains a LoRA adapter, else "other" (e.g. an optimised instruction). Results that
    recorded no config fall back on the name: "icl-..." and "tune-..."."""
    target = ((result.get("config") or {}).get("learner") or {}).get("_target_")
    if isinstance(target, str) and "." in target:
        module, _, name = target.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            found = None
        if isinstance(found, type):
            return IN_CONTEXT if issubclass(found, InContextLearner) else TUNED if issubclass(
                found, LoraLearner) else "other"
    name = str((result.get("cell") or {}).get("learner"))
    return IN_CONTEXT if name.startswith("icl-") else TUNED if name.startswith("tune-") else "other"


def square_kernels(results: list[dict], questions: list[dict]) -> list[Kernel]:
    """Every kernel of `results` as a square over its test skills (or with `unusable` saying why it cannot be).

    A test skill that is no train skill (its cell failed or never ran, or the grid trains on fewer skills) is a row
    of missing entries; train skills that are no test skill are left out. At least MIN_SKILLS rows must remain.
    """
    kinds = {}
    for result in results:
        cell = result.get("cell") or {}
        if "config" in result or (cell.get("learner"), cell.get("config_id")) not in kinds:
            kinds[(cell.get("learner"), cell.get("config_id"))] = learner_kind(result)  # seed-pooled: no config
    by_identity: dict[tuple, dict] = {}
    for q in questions:
        key = tuple(str(q.get(k)) for k in TABLE_IDENTITY)
        by_identity.setdefault(key, {}).setdefault((q["train_skill"], q["test_skill"]), {})[q["id"]] = q["delta"]
    found = []
    for table in kernel_tables(results):
        kernel = Kernel(table, kinds.get((table.learner, table.config_id), "other"),
                        any(c not in ("base", "None") for c in table.controls))
        found.append(kernel)
        tests = table.test_skills
        rows = [t for t in tests if t in table.train_skills and any(k[0] == t for k in table.entries)]
        if len(rows) < MIN_SKILLS:
            kernel.unusable = (f"only {len(tests)} skills" if len(rows) == len(tests) else
                               f"{len(rows)} of its {len(tests)} test skills as train skills")
            kernel.unusable += f" (at least {MIN_SKILLS} needed)"
            continue
        n = len(tests)
        kernel.values, kernel.low, kernel.high = (np.full((n, n), np.nan) for _ in range(3))
        for (train, test), row in table.entries.items():
            if train in tests and finite(row.get("delta")):
                i, j = tests.index(train), tests.index(test)
                kernel.values[i, j] = row["delta"]
                kernel.low[i, j], kernel.high[i, j] = (row[k] if finite(row.get(k)) else np.nan
                                                       for k in ("ci_low", "ci_high"))
        kernel.skills = list(tests)
        kernel.per_question = by_identity.get(tuple(str(getattr(table, k, None)) for k in TABLE_IDENTITY), {})
    return found


def axis_value(kernel: Kernel, axis: str) -> str:
    """How a kernel is named along the axis: "icl-skill", "ntk (balanced)"."""
    first, *rest = (kernel.value(k) for k in AXES[axis])
    return str(first) + "".join(f" ({v})" for v in rest if v is not None)


def shared_columns(axis: str) -> tuple[str, ...]:
    """The identity columns two kernels compared along `axis` have in common."""
    return tuple(k for k in TABLE_IDENTITY if k not in AXES[axis] and k != "config_id")


def candidate_pairs(kernels: list[Kernel], axis: str) -> list[tuple[Kernel, Kernel]]:
    """Pairs (a, b) of kernels equal on every identity column but the axis's and config_id, with different axis
    values; a before b in the tables' order."""
    pairs = []
    for i, a in enumerate(kernels):
        for b in kernels[i + 1:]:
            if all(str(a.value(k)) == str(b.value(k)) for k in shared_columns(axis)) and \
                    axis_value(a, axis) != axis_value(b, axis):
                pairs.append((a, b))
    return pairs


def comparable_pairs(kernels: list[Kernel], axis: str | None) -> tuple[list[tuple[Kernel, Kernel]], list[str]]:
    """The pairs to compare along `axis` (None: in-context against tuned learners, see the module docstring) and a
    note for each pair that would have been compared but cannot be."""
    chosen = axis or "learner"
    pairs, notes = [], []
    for a, b in candidate_pairs(kernels, chosen):
        if axis is None:
            if {a.kind, b.kind} != {IN_CONTEXT, TUNED} or not (a.own_control and b.own_control):
                continue
            a, b = (b, a) if a.kind == TUNED else (a, b)   # the paper's order: in-context first
        names = f"{axis_value(a, chosen)} vs {axis_value(b, chosen)} ({_context(a.table, chosen)}) not compared: "
        unusable = [f"{axis_value(k, chosen)}'s kernel has {k.unusable}" for k in (a, b) if k.unusable]
        if unusable:
            notes.append(names + "; ".join(unusable))
        elif set(a.skills) != set(b.skills):
            notes.append(names + "their test skills differ")
        else:
            pairs.append((a, b))
    if axis is not None and not pairs and not notes:
        notes.append(f"no two kernels differ only in the {axis}: nothing to compare")
    return pairs, notes


def _context(table: KernelTable, axis: str) -> str:
    return context_of({k: getattr(table, k, None) for k in shared_columns(axis)})


def context_of(identity: dict) -> str:
    """What two compared kernels share, for a heading or a note: "smollm2 · arith · direct · exact · seed 0"."""
    shown = []
    for k, v in identity.items():
        if v is None or k == "test_dataset" and v == identity.get("dataset"):
            continue
        shown.append(("seeds pooled" if v == "pooled" else f"seed {v}") if k == "seed" else str(v))
    return " · ".join(shown)
