"""The predicted kernel (scorer=entk) beside the measured one: report/predicted.csv and summary.md lines.

Each entk kernel is paired with every measured kernel (any other scorer, e.g. exact) of the same model, learner,
data sets, answer format and seed, over the (train, test) entries both hold; kernels of different configurations
(config_id) stay separate comparisons. Per comparison: Spearman's rho of predicted against measured deltas and, when
the common entries form a complete square kernel, the Mantel p-value (ntkeval.stats.mantel: skill labels permuted
jointly by rows and columns); for the predicted change of p (delta) and of log p (delta_logp: the step before the
factor p, which shrinks every prediction for questions the untouched model rarely gets right). When the measured cells hold a learning curve (result.json "curve": rows of size,
test_skill, delta), the same numbers at each size: does one linearised step rank the skills as tuning does after s
steps?
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ntkeval.stats.mantel import mantel, spearman

ENTK = "entk"
# what a predicted and a measured kernel share
PAIRING = ("model", "learner", "dataset", "test_dataset", "format", "seed")
PREDICTED_COLUMNS = ["model", "learner", "dataset", "test_dataset", "format", "seed", "predicted_config",
                     "measured_scorer", "measured_config", "size", "train_skill", "test_skill", "predicted",
                     "predicted_logp", "measured"]

Entries = dict[tuple[str, str], float]  # (train skill, test skill) -> delta


@dataclass
class _Kernel:
    cell: dict                                 # the identity of its first cell
    entries: Entries = field(default_factory=dict)
    entries_logp: Entries = field(default_factory=dict)  # entk: the predicted change of log p (delta_logp)
    curve: dict[int, Entries] = field(default_factory=dict)  # size -> entries of the learning curve
    unit: str = "size"


@dataclass(frozen=True)
class Agreement:
    size: int | None      # None: the measured kernel itself; else a learning-curve size
    entries: int
    rho: float
    p_value: float        # NaN when the common entries are not a complete square kernel
    skills: int           # 0 when there is no Mantel test
    logp: "Agreement | None" = None  # the same for the predicted change of log p, when the kernel holds it


def _kernels(results: list[dict], predicted: bool) -> dict[tuple, _Kernel]:
    """Done cells of entk (predicted) or of every other scorer, grouped by PAIRING + scorer + config_id."""
    kernels: dict[tuple, _Kernel] = {}
    for result in results:
        cell = result.get("cell") or {}
        if result.get("status") != "done" or (cell.get("scorer") == ENTK) != predicted:
            continue
        key = (*(cell.get(k) for k in PAIRING), cell.get("scorer"), cell.get("config_id"))
        kernel = kernels.setdefault(key, _Kernel(cell))
        train = cell.get("train_skill")
        for test in result.get("tests") or []:
            kernel.entries[(train, test.get("test_skill"))] = _number(test.get("delta"))
            if predicted and "delta_logp" in test:
                kernel.entries_logp[(train, test.get("test_skill"))] = _number(test.get("delta_logp"))
        for row in result.get("curve") or []:
            kernel.unit = str(row.get("unit", kernel.unit))
            kernel.curve.setdefault(int(row["size"]), {})[(train, row.get("test_skill"))] = _number(row.get("delta"))
    return kernels


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _common(a: Entries, b: Entries) -> list[tuple[str, str]]:
    return sorted(k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k]))


def agreement(predicted: Entries, measured: Entries, size: int | None = None, seed: int = 0) -> Agreement:
    """Spearman's rho over the common entries; the Mantel p-value when they are a complete square kernel."""
    common = _common(predicted, measured)
    rho = spearman([predicted[k] for k in common], [measured[k] for k in common]) if common else math.nan
    trains, tests = sorted({t for t, _ in common}), sorted({s for _, s in common})
    if trains != tests or len(common) != len(trains) ** 2 or len(trains) < 3:
        return Agreement(size, len(common), rho, math.nan, 0)
    a = np.array([[predicted[(t, s)] for s in trains] for t in trains])
    b = np.array([[measured[(t, s)] for s in trains] for t in trains])
    return Agreement(size, len(common), rho, mantel(a, b, seed=seed).p_value, len(trains))


def comparisons(results: list[dict]) -> list[tuple[_Kernel, _Kernel, list[Agreement]]]:
    """(predicted, measured, [the agreement on the kernel, then at each curve size]) per pairing."""
    measured = _kernels(results, predicted=False)
    out = []
    for key, kernel in sorted(_kernels(results, predicted=True).items(), key=lambda kv: str(kv[0])):
        for mkey, other in sorted(measured.items(), key=lambda kv: str(kv[0])):
            if mkey[:len(PAIRING)] != key[:len(PAIRING)] or not _common(kernel.entries, other.entries):
                continue
            found = [_both(kernel, other.entries, None)]
            found += [_both(kernel, entries, size) for size, entries in sorted(other.curve.items())]
            out.append((kernel, other, found))
    return out


def _both(kernel: _Kernel, measured: Entries, size: int | None) -> Agreement:
    """The agreement of the predicted change of p, with that of log p attached when the kernel holds it."""
    found = agreement(kernel.entries, measured, size)
    if not kernel.entries_logp:
        return found
    return Agreement(found.size, found.entries, found.rho, found.p_value, found.skills,
                     agreement(kernel.entries_logp, measured, size))


def _rows(kernel: _Kernel, other: _Kernel) -> list[dict]:
    cell = kernel.cell
    base = {**{k: cell.get(k) for k in PAIRING}, "predicted_config": cell.get("config_id"),
            "measured_scorer": other.cell.get("scorer"), "measured_config": other.cell.get("config_id")}
    rows = []
    for size, entries in [(None, other.entries), *sorted(other.curve.items())]:
        for train, test in _common(kernel.entries, entries):
            rows.append({**base, "size": "" if size is None else size, "train_skill": train, "test_skill": test,
                         "predicted": kernel.entries[(train, test)],
                         "predicted_logp": kernel.entries_logp.get((train, test), ""),
                         "measured": entries[(train, test)]})
    return rows


def _text(found: Agreement, unit: str) -> str:
    where = "" if found.size is None else f"at {unit} {found.size}: "
    logp = found.logp
    if logp is not None and math.isfinite(logp.rho):
        mantel_p = f", Mantel p = {logp.p_value:.3g}" if math.isfinite(logp.p_value) else ""
        logp_text = f"; change of log p: rho = {logp.rho:.2f}{mantel_p}"
    else:
        logp_text = ""
    if math.isfinite(found.p_value):
        return (f"{where}Spearman rho = {found.rho:.2f}, Mantel p = {found.p_value:.3g}{logp_text} ({found.skills} "
                f"skills, {found.entries} entries)")
    return (f"{where}Spearman rho = {found.rho:.2f}{logp_text} ({found.entries} entries; no Mantel test: they are "
            "not a complete square kernel of 3 or more skills)")


def write_predicted(results: list[dict], out_dir: Path | str) -> list[str]:
    """Write out_dir/predicted.csv (when any entk kernel has a measured partner) and return summary.md lines."""
    found = comparisons(results)
    if not found:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predicted.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PREDICTED_COLUMNS)
        writer.writeheader()
        for kernel, other, _ in found:
            writer.writerows(_rows(kernel, other))
    lines = ["## Predicted kernel (entk: one linearised SGD step) against the measured kernel", ""]
    by_model: dict[str, list[str]] = defaultdict(list)
    for kernel, other, agreements in found:
        c = kernel.cell
        configs = f"{c.get('config_id')}/{other.cell.get('config_id')}"
        head = (f"{c.get('model')}: predicted vs measured {c.get('learner')} kernel ({other.cell.get('scorer')}, "
                f"{c.get('dataset')}, seed {c.get('seed')}, configs {configs})")
        by_model[str(c.get("model"))].append(f"- {head}: " + "; ".join(_text(a, other.unit) for a in agreements))
    for model in sorted(by_model):
        lines += by_model[model]
    return lines + [""]
