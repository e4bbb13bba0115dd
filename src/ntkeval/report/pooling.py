"""Per-question deltas read back from a sweep, and the seed-pooled kernel built from them.

A cell's questions.jsonl holds one row per test question; its per-question delta is the scorer's own (the head
estimate for scorer=ntk, the accuracy difference for scorer=sampled, p_learner - p_control for scorer=exact).
Cells that share every identity column but the seed are pooled into one kernel whose interval covers question and
seed variation (ntkeval.stats.intervals.pooled_delta); each seed drew its own questions and its own adaptation.
Each pooled entry also says how much of its spread is seed variation (seed_variance: seed_sd, question_se,
seed_share), and seed_summary_lines puts that into summary.md per pooled kernel.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ntkeval.report.tables import TABLE_IDENTITY
from ntkeval.stats.intervals import pooled_delta

POOLED = "pooled"  # the seed column of a seed-pooled kernel
SEED_COLUMNS = ["seed_sd", "question_se", "seed_share"]  # what kernel_pooled.csv adds per entry (SeedVariance)
DOMINANT = 0.5  # seed_share above this: seed variation is most of a single seed's spread
SHOWN = 5       # entries named per kernel in summary.md where seed variation dominates; the rest are counted


@dataclass(frozen=True)
class SeedVariance:
    """One-way random-effects decomposition of a pooled entry over its S seeds (method of moments).

    Seed s has n_s per-question deltas with mean m_s and sample variance v_s (ddof 1). The model is
    d[s, q] = mu + a_s + e[s, q], seed effects a_s with variance sigma2_seed, question terms e with variance
    sigma2_s (each seed draws its own questions, so question difficulty is in e and may differ between seeds).
    Then var(m_s) = sigma2_seed + sigma2_s / n_s, and for independent m_s with a common mean the sample variance
    of the seed means has expectation the mean of their variances:

        between = sum_s (m_s - mean(m))^2 / (S - 1),       E[between] = sigma2_seed + (1/S) sum_s sigma2_s / n_s
        within  = (1/S) sum_s v_s / n_s,                  E[within]  = (1/S) sum_s sigma2_s / n_s
        seed_var_raw = between - within                   (unbiased for sigma2_seed, for any n_s and sigma2_s)
        seed_var = max(0, seed_var_raw)                   (a variance; biased up when sigma2_seed is near 0)
        seed_share = seed_var / (seed_var + within)

    Unequal n_s need no n_0 correction as in ANOVA's weighted form: the seeds are weighted equally, as the pooled
    delta (the mean of seed means) weights them. seed_share is the share of one seed's estimate's variance that is
    seed variation: near 1, more seeds narrow the pooled interval more than more questions would.
    """
    n_seeds: int
    between: float
    within: float
    seed_var_raw: float
    seed_var: float
    seed_share: float  # NaN when there is no spread at all

    def columns(self) -> dict:
        return {"seed_sd": math.sqrt(self.seed_var) if math.isfinite(self.seed_var) else math.nan,
                "question_se": math.sqrt(self.within) if math.isfinite(self.within) else math.nan,
                "seed_share": self.seed_share}


def seed_variance(diffs_by_seed: Sequence[Sequence[float]]) -> SeedVariance:
    """The decomposition of one entry's per-question deltas by seed; NaN under two seeds or two questions a seed."""
    samples = [np.asarray(d, dtype=np.float64) for d in diffs_by_seed]
    if len(samples) < 2 or any(s.size < 2 for s in samples):
        return SeedVariance(len(samples), math.nan, math.nan, math.nan, math.nan, math.nan)
    between = float(np.var([s.mean() for s in samples], ddof=1))
    within = float(np.mean([s.var(ddof=1) / s.size for s in samples]))
    raw = between - within
    seed_var = max(0.0, raw)
    total = seed_var + within
    return SeedVariance(len(samples), between, within, raw, seed_var, seed_var / total if total > 0 else math.nan)


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
                         "ci_low": d.ci_low, "ci_high": d.ci_high, **seed_variance(diffs).columns()})
        if rows:
            cell = dict(cells.get(group, {}))
            cell.update({k: v for k, v in zip([k for k in TABLE_IDENTITY if k != "seed"], group[:-1])})
            cell.update({"seed": POOLED, "train_skill": group[-1], "seeds": seeds})
            pooled.append({"status": "done", "cell": cell, "tests": rows})
    return pooled


def seed_summary_lines(pooled: list[dict]) -> list[str]:
    """summary.md lines per seed-pooled kernel: the median seed_share over its entries and the entries where seed
    variation dominates (seed_share > DOMINANT), largest first."""
    kernels: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    for result in pooled:
        cell = result.get("cell") or {}
        key = tuple(cell.get(k) for k in TABLE_IDENTITY if k != "seed")
        for row in result.get("tests") or []:
            share = row.get("seed_share")
            if isinstance(share, float) and math.isfinite(share):
                kernels[key].append((f"{cell.get('train_skill')}->{row.get('test_skill')}", share))
    lines = []
    for key, shares in kernels.items():
        identity = dict(zip([k for k in TABLE_IDENTITY if k != "seed"], key))
        name = " ".join(str(v) for k, v in identity.items() if v is not None and (k, v) != ("format", "direct")
                        and not (k == "test_dataset" and v == identity.get("dataset")))
        top = sorted(shares, key=lambda e: -e[1])
        dominant = [e for e in top if e[1] > DOMINANT]
        named = ", ".join(f"{pair} ({share:.2f})" for pair, share in dominant[:SHOWN])
        more = f" and {len(dominant) - SHOWN} more" if len(dominant) > SHOWN else ""
        where = f"; seed variation dominates (share > {DOMINANT:g}) in {len(dominant)}: {named}{more}" if dominant \
            else f"; seed variation dominates no entry (share > {DOMINANT:g})"
        lines.append(f"- {name}: median seed share {float(np.median([s for _, s in shares])):.2f} over "
                     f"{len(shares)} entries{where}")
    return ["## Seed variation (seed-pooled kernels)", "", *lines, ""] if lines else []
