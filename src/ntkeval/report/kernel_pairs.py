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
from dataclasses import dataclass

import numpy as np

from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.report.tables import TABLE_IDENTITY, KernelTable, finite, kernel_tables

AXES = {"learner": ("learner",), "model": ("model",), "format": ("format",), "scorer": ("scorer", "estimate")}
MIN_SKILLS = 3
IN_CONTEXT, TUNED = "in-context", "tuned"


@dataclass
class Kernel:
    """A square kernel read from the report's tables: entries, their intervals and per-question deltas."""
    table: KernelTable
    skills: list[str]
    values: np.ndarray                  # n x n, NaN where missing
    low: np.ndarray
    high: np.ndarray
    per_question: dict[tuple[str, str], dict]   # (train, test) -> {question id: delta}
    kind: str                           # IN_CONTEXT, TUNED or "other"
    own_control: bool                   # measured against a control of its own, not the untouched model

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


def square_kernels(results: list[dict], questions: list[dict]) -> tuple[list[Kernel], list[tuple[KernelTable, str]]]:
    """Every kernel of `results` as a square over its test skills, and (table, why) for those that cannot be.

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
    found, skipped = [], []
    for table in kernel_tables(results):
        tests = table.test_skills
        rows = [t for t in tests if t in table.train_skills and any(k[0] == t for k in table.entries)]
        if len(rows) < MIN_SKILLS:
            skipped.append((table, f"only {len(tests)} skills (at least {MIN_SKILLS} needed)" if len(rows) == len(
                tests) else f"{len(rows)} of its {len(tests)} test skills as train skills (at least {MIN_SKILLS} "
                            f"needed)"))
            continue
        n = len(tests)
        values, low, high = (np.full((n, n), np.nan) for _ in range(3))
        for (train, test), row in table.entries.items():
            if train in tests and finite(row.get("delta")):
                i, j = tests.index(train), tests.index(test)
                values[i, j] = row["delta"]
                low[i, j], high[i, j] = (row[k] if finite(row.get(k)) else np.nan for k in ("ci_low", "ci_high"))
        key = tuple(str(getattr(table, k, None)) for k in TABLE_IDENTITY)
        found.append(Kernel(table, list(tests), values, low, high, by_identity.get(key, {}),
                            kinds.get((table.learner, table.config_id), "other"),
                            any(c not in ("base", "None") for c in table.controls)))
    return found, skipped


def axis_value(item, axis: str) -> str:
    """How a kernel (or table) is named along the axis: "icl-skill", "ntk (balanced)"."""
    get = item.value if isinstance(item, Kernel) else lambda k: getattr(item, k, None)
    first, *rest = (get(k) for k in AXES[axis])
    return str(first) + "".join(f" ({v})" for v in rest if v is not None)


def shared_columns(axis: str) -> tuple[str, ...]:
    """The identity columns two kernels compared along `axis` have in common."""
    return tuple(k for k in TABLE_IDENTITY if k not in AXES[axis] and k != "config_id")


def candidate_pairs(items: list, axis: str) -> list[tuple]:
    """Pairs (a, b) of kernels or tables equal on every identity column but the axis's and config_id, with
    different axis values; a before b in the tables' order."""
    get = (lambda x, k: x.value(k)) if items and isinstance(items[0], Kernel) else (lambda x, k: getattr(x, k, None))
    pairs = []
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if all(str(get(a, k)) == str(get(b, k)) for k in shared_columns(axis)) and axis_value(a, axis) != axis_value(
                    b, axis):
                pairs.append((a, b))
    return pairs


def comparable_pairs(kernels: list[Kernel], skipped: list[tuple[KernelTable, str]], axis: str | None
                     ) -> tuple[list[tuple[Kernel, Kernel]], list[str]]:
    """The pairs to compare along `axis` (None: in-context against tuned learners, see the module docstring) and a
    note for each pair of kernels that would have been compared but cannot be."""
    chosen = axis or "learner"

    def wanted(a, b) -> bool:
        if axis is not None:
            return True
        return {a.kind, b.kind} == {IN_CONTEXT, TUNED} and a.own_control and b.own_control

    pairs, notes = [], []
    for a, b in candidate_pairs(kernels, chosen):
        if not wanted(a, b):
            continue
        a, b = (b, a) if axis is None and a.kind == TUNED else (a, b)   # the paper's order: in-context first
        if set(a.skills) != set(b.skills):
            notes.append(f"{_names(a, b, chosen)} not compared: their test skills differ")
        else:
            pairs.append((a, b))
    reasons = {id(t): why for t, why in skipped}
    tables = [k.table for k in kernels] + [t for t, _ in skipped]
    for a, b in candidate_pairs(tables, chosen):
        bad = [(t, reasons[id(t)]) for t in (a, b) if id(t) in reasons]
        if bad and (axis is not None or _is_icl_vs_tuning_name(a, b)):
            why = "; ".join(f"{axis_value(t, chosen)}'s kernel has {r}" for t, r in bad)
            notes.append(f"{axis_value(a, chosen)} vs {axis_value(b, chosen)} ({_context(a, chosen)}) not compared: "
                         f"{why}")
    if axis is not None and not pairs and not notes:
        notes.append(f"no two kernels differ only in the {axis}: nothing to compare")
    return pairs, notes


def _is_icl_vs_tuning_name(a: KernelTable, b: KernelTable) -> bool:
    """Whether two kernels skipped for their shape would have been the default comparison (by their names: a
    skipped kernel carries no learner kind, and a note is all that is at stake)."""
    kinds = {learner_kind({"cell": {"learner": t.learner}}) for t in (a, b)}
    return kinds == {IN_CONTEXT, TUNED} and all(any(c not in ("base", "None") for c in t.controls) for t in (a, b))


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


def _names(a: Kernel, b: Kernel, axis: str) -> str:
    return f"{axis_value(a, axis)} vs {axis_value(b, axis)} ({_context(a.table, axis)})"
