"""Per-question deltas read back from a sweep, and the seed-pooled kernel built from them.

A cell's questions.jsonl holds one row per test question; its per-question delta is the scorer's own (the head
estimate for scorer=ntk, the accuracy difference for scorer=sampled, p_learner - p_control for scorer=exact).
Cells that share every identity column but the seed are pooled into one kernel whose interval covers question and
seed variation (ntkeval.stats.intervals.pooled_delta); each seed drew its own questions and its own adaptation.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from ntkeval.report.tables import TABLE_IDENTITY
from ntkeval.stats.intervals import pooled_delta

POOLED = "pooled"  # the seed column of a seed-pooled kernel


def question_delta(row: dict, estimate: str | None) -> float | None:
    """The delta of one question row as its scorer defines it; None when the row has none."""
    for key in ([f"delta_{estimate}"] if estimate else []) + ["delta"]:
        if isinstance(row.get(key), (int, float)):
            return float(row[key])
    if isinstance(row.get("p_learner"), (int, float)) and isinstance(row.get("p_control"), (int, float)):
        return float(row["p_learner"]) - float(row["p_control"])
    return None


def question_rows(result: dict) -> list[dict]:
    """Per question of a done cell: its identity columns, train and test skill, question id and delta."""
    if result.get("status") != "done" or not result.get("result_path"):
        return []
    path = Path(result["result_path"]).with_name("questions.jsonl")
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    cell = result.get("cell") or {}
    out = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            return []  # a damaged file: no question-level numbers rather than partial ones
        delta = question_delta(row, cell.get("estimate"))
        if delta is None or not math.isfinite(delta):
            continue
        out.append({**{k: cell.get(k) for k in TABLE_IDENTITY}, "train_skill": cell.get("train_skill"),
                    "test_skill": row.get("test_skill"), "id": row.get("id"), "delta": delta})
    return out


def pooled_results(results: list[dict], questions: list[dict], seed: int = 0) -> list[dict]:
    """One synthetic done result per (identity but seed, train skill) present under two or more seeds, with seed
    "pooled" and per test skill the pooled delta and interval (n = questions over all seeds, n_seeds, seeds)."""
    by_group: dict[tuple, dict[tuple, dict]] = defaultdict(lambda: defaultdict(list))
    for q in questions:
        group = tuple(q.get(k) for k in TABLE_IDENTITY if k != "seed") + (q["train_skill"],)
        by_group[group][(q["test_skill"], q.get("seed"))].append(q["delta"])
    cells = {}
    for result in results:
        cell = result.get("cell") or {}
        if result.get("status") == "done":
            cells.setdefault(tuple(cell.get(k) for k in TABLE_IDENTITY if k != "seed") + (cell.get("train_skill"),),
                             cell)
    pooled = []
    for group, per_test_seed in by_group.items():
        seeds = sorted({s for _, s in per_test_seed}, key=str)
        if len(seeds) < 2:
            continue
        tests = list(dict.fromkeys(t for t, _ in per_test_seed))
        rows = []
        for test in tests:
            diffs = [per_test_seed[(test, s)] for s in seeds if per_test_seed.get((test, s))]
            if len(diffs) < 2:
                continue  # a test skill seen under one seed only cannot be pooled over seeds
            d = pooled_delta(diffs, seed=seed)
            rows.append({"test_skill": test, "n": d.n, "n_seeds": len(diffs), "delta": d.delta,
                         "ci_low": d.ci_low, "ci_high": d.ci_high})
        if rows:
            cell = dict(cells.get(group, {}))
            cell.update({k: v for k, v in zip([k for k in TABLE_IDENTITY if k != "seed"], group[:-1])})
            cell.update({"seed": POOLED, "train_skill": group[-1], "seeds": seeds})
            pooled.append({"status": "done", "cell": cell, "tests": rows})
    return pooled
