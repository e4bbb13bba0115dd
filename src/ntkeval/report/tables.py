"""Kernel matrices gathered from cell results: one table per result identity (model, learner, dataset, scorer,
estimate, config_id, seed), train rows by test columns. Rows that differ in any of these are never merged.

Shared by the heatmaps and the plain-text summary of `ntkeval-report`, so both show the same rows in the same order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# What a kernel entry's numbers depend on besides its (train, test) pair; a table holds one value of each.
TABLE_IDENTITY = ("model", "learner", "dataset", "test_dataset", "format", "scorer", "estimate", "config_id", "seed")


@dataclass
class KernelTable:
    model: str
    learner: str
    dataset: str
    test_dataset: str | None = None      # where the test skills come from (pair.test_dataset); = dataset usually
    format: str | None = None            # the answer format (direct, cot, pot, ...)
    scorer: str | None = None
    estimate: str | None = None          # the ntk scorer's head estimate; None for the others
    config_id: str | None = None         # hash of every result-affecting setting (tuning, LoRA, prompt, data, scorer)
    seed: int | str | None = None        # an int, or "pooled" for the seed-pooled kernel
    controls: list[str] = field(default_factory=list)
    train_skills: list[str] = field(default_factory=list)
    test_skills: list[str] = field(default_factory=list)
    entries: dict[tuple[str, str], dict] = field(default_factory=dict)  # (train, test) -> a done cell's test row
    failed: set[str] = field(default_factory=set)  # train skills whose cell failed and has no done rerun

    def title(self) -> str:
        scorer = f" · {self.scorer}" + (f" ({self.estimate})" if self.estimate else "") if self.scorer else ""
        config = f" · config {self.config_id}" if self.config_id else ""
        seed = "" if self.seed is None else (" · seeds pooled" if self.seed == "pooled" else f" · seed {self.seed}")
        shown = f" · {self.format}" if self.format and self.format != "direct" else ""
        return (f"{self.model} · {self.learner} vs {'/'.join(self.controls) or '?'} · {self.datasets()}{shown}{scorer}"
                f"{config}{seed}")

    def crosses(self) -> bool:
        """Whether its test skills come from another data set than its train skills."""
        return self.test_dataset not in (None, self.dataset)

    def datasets(self) -> str:
        return f"{self.dataset} -> {self.test_dataset}" if self.crosses() else str(self.dataset)

    def file_stem(self) -> str:
        shown = self.format if self.format != "direct" else None  # direct: the file names of before formats
        tests = f"to-{self.test_dataset}" if self.crosses() else None  # same data set: the file names of before
        parts = [self.model, self.learner, self.dataset, tests, shown, self.scorer, self.estimate, self.config_id]
        parts = [p for p in parts if p] + ([] if self.seed is None else [f"seed{self.seed}"])
        return "kernel_" + "_".join(safe_name(p) for p in parts)

    def gap_label(self, train: str) -> str:
        """What an empty square stands for: the cell failed, or nothing was found for it."""
        return "failed" if train in self.failed else "missing"


def table_key(cell: dict) -> tuple:
    """The identity of the table a cell's rows belong to (None for what an older result does not record)."""
    return tuple(cell.get(k) for k in TABLE_IDENTITY)


def safe_name(text: str) -> str:
    """A file-name-safe form of a model/learner/dataset name ("meta-llama/X" -> "meta-llama-X")."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-") or "none"


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def excludes_zero(row: dict) -> bool:
    """True when the row's confidence interval lies entirely on one side of 0."""
    low, high = row.get("ci_low"), row.get("ci_high")
    return finite(low) and finite(high) and (low > 0 or high < 0)


def _add_unique(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _order_rows(trains: list[str], tests: list[str]) -> list[str]:
    """Train skills in the order of the test columns where they coincide (so the diagonal is the diagonal)."""
    return [t for t in tests if t in trains] + [t for t in trains if t not in tests]


def kernel_tables(results: list[dict]) -> list[KernelTable]:
    """Group results into tables, one per identity; rows/columns keep the order the cells listed (job order)."""
    tables: dict[tuple, KernelTable] = {}
    for result in results:
        cell = result.get("cell") or {}
        key = table_key(cell)
        table = tables.setdefault(key, KernelTable(*(None if v is None else v for v in key)))
        train = str(cell.get("train_skill"))
        _add_unique(table.train_skills, train)
        _add_unique(table.controls, str(cell.get("control")))
        if result.get("status") != "done":
            if not any(k[0] == train for k in table.entries):
                table.failed.add(train)
            continue
        table.failed.discard(train)
        for row in result.get("tests") or []:
            test = str(row.get("test_skill"))
            _add_unique(table.test_skills, test)
            table.entries[(train, test)] = row  # a later rerun of the same cell replaces the earlier one
    for table in tables.values():
        table.train_skills = _order_rows(table.train_skills, table.test_skills)
    return [tables[k] for k in sorted(tables, key=lambda k: tuple(str(v) for v in k))]


def format_entry(row: dict | None, gap: str) -> str:
    """One square as text: "+0.11 [+0.05,+0.17]*", the star marking a CI that excludes 0."""
    if row is None or not finite(row.get("delta")):
        return gap
    low, high = row.get("ci_low"), row.get("ci_high")
    ci = f" [{low:+.2f},{high:+.2f}]" if finite(low) and finite(high) else " [no CI]"
    return f"{row['delta']:+.2f}{ci}{'*' if excludes_zero(row) else ''}"


def format_table(table: KernelTable) -> str:
    """The kernel as a plain-text matrix with a header line, for the terminal and problems.txt readers."""
    if not table.test_skills:
        return f"{table.title()}\n  no done cells; failed train skills: {', '.join(table.train_skills)}"
    header = ["train \\ test"] + table.test_skills
    body = [[train] + [format_entry(table.entries.get((train, test)), table.gap_label(train))
                       for test in table.test_skills] for train in table.train_skills]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    lines = [f"{table.title()}   (delta [95% CI], * = CI excludes 0)"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header] + body]
    return "\n".join(lines)
