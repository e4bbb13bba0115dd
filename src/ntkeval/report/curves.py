"""Learning curves in the report: the kernel as a function of adaptation size (demonstrations or optimizer steps),
from the "curve" rows the cells of a learner with learner.curve wrote.

    write_curves(results, out_dir) -> summary.md lines

writes report/curves.csv (one row per kernel identity, (train, test) pair and size), one figure per identity
(curves_<stem>.png: mean delta against size for the diagonal, the same group and the other groups, with interval
bands) and report/speed.csv, the "learns faster" table: per identity and group, the smallest size whose mean delta
reaches half the group's largest mean delta, and the smallest that reaches a fixed delta (FIXED_THRESHOLD). ICL
(demos) and tuning (steps) of one sweep are then rows side by side.

Groups follow the skill groups the cells recorded (report/recorded_groups.py): "same group" pairs share the deep group
(arith's operation, KhanSkill's domain) but not the surface (arith's format) when the data set has a surface axis;
"other group" pairs differ in the deep group. The interval of a group mean at one size is the mean of its pairs'
interval bounds: if every pair's interval covers its own delta, this one covers their mean, and averaging the bounds of
several pairs errs on the wide side (tests/test_curves.py simulates its coverage).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ntkeval.data.base import SkillGroups
from ntkeval.report.curve_figure import draw_curves
from ntkeval.report.recorded_groups import kernel_groups
from ntkeval.report.structure import groups_key
from ntkeval.report.tables import TABLE_IDENTITY, KernelTable, finite, table_key

CURVE_COLUMNS = [*TABLE_IDENTITY, "unit", "train_skill", "test_skill", "size", "n", "delta", "ci_low", "ci_high",
                 "p_learner", "p_control"]
GROUPS = ("diagonal", "same group", "other group")
FIXED_THRESHOLD = 0.05   # a delta of 5 points of probability: a gain worth reading at the usual 32-64 questions
NOT_REACHED = "not reached"
SPEED_COLUMNS = [*TABLE_IDENTITY, "unit", "group", "pairs", "max_delta", "max_at", "half_threshold", "size_to_half",
                 "fixed_threshold", "size_to_fixed"]


@dataclass
class GroupCurve:
    """One group's mean curve within one kernel identity: per size, the mean delta and interval over its pairs."""
    group: str
    sizes: list[int]
    delta: list[float]
    ci_low: list[float]
    ci_high: list[float]
    pairs: int  # distinct (train, test) pairs behind the curve


def curve_rows(results: list[dict]) -> list[dict]:
    """One flat row per (done cell, curve row), sorted by identity, train skill, size; test skills in cell order."""
    rows = []
    for result in results:
        if result.get("status") != "done":
            continue
        cell = result.get("cell") or {}
        for point in result.get("curve") or []:
            row = {k: cell.get(k) for k in TABLE_IDENTITY}
            row["train_skill"], row["control"] = cell.get("train_skill"), cell.get("control")  # control: titles only
            row.update({k: point.get(k) for k in CURVE_COLUMNS if k not in row})
            rows.append(row)
    order = [*TABLE_IDENTITY, "train_skill"]
    return sorted(rows, key=lambda r: (tuple(str(r.get(k)) for k in order), r.get("size") or 0))


def pair_group(train: str, test: str, groups: SkillGroups | None) -> str | None:
    """"diagonal", "same group", "other group", or None (skills the groups do not cover, or a same-surface pair of one
    deep group, which is neither)."""
    if train == test:
        return "diagonal"
    if groups is None or train not in groups.of_skill or test not in groups.of_skill:
        return None
    deep = groups.of_skill[train][groups.deep] == groups.of_skill[test][groups.deep]
    if not deep:
        return "other group"
    surface = groups.surface
    other_surface = surface is None or groups.of_skill[train][surface] != groups.of_skill[test][surface]
    return "same group" if other_surface else None


def group_curves(rows: list[dict], groups: SkillGroups | None) -> list[GroupCurve]:
    """The mean curve of each group present in one identity's rows (GROUPS order)."""
    by_group: dict[str, dict[int, list[dict]]] = {}
    for row in rows:
        group = pair_group(str(row["train_skill"]), str(row["test_skill"]), groups)
        if group is not None and finite(row.get("delta")):
            by_group.setdefault(group, {}).setdefault(int(row["size"]), []).append(row)
    curves = []
    for group in GROUPS:
        sizes = by_group.get(group)
        if not sizes:
            continue
        ordered = sorted(sizes)
        means = {key: [_mean([r.get(key) for r in sizes[s]]) for s in ordered]
                 for key in ("delta", "ci_low", "ci_high")}
        pairs = {(r["train_skill"], r["test_skill"]) for points in sizes.values() for r in points}
        curves.append(GroupCurve(group, ordered, means["delta"], means["ci_low"], means["ci_high"], len(pairs)))
    return curves


def _mean(values: list) -> float:
    numbers = [float(v) for v in values if finite(v)]
    return sum(numbers) / len(numbers) if len(numbers) == len(values) and numbers else float("nan")


def first_reaching(sizes: list[int], deltas: list[float], threshold: float) -> int | None:
    """The smallest size whose mean delta is at least `threshold`; None when none is."""
    return next((size for size, delta in zip(sizes, deltas) if finite(delta) and delta >= threshold), None)


def speed_row(identity: dict, unit: str, curve: GroupCurve, fixed: float = FIXED_THRESHOLD) -> dict:
    """How fast one group learns: the largest mean delta and where, the smallest size reaching half of it (when it
    is a gain), and the smallest reaching `fixed`."""
    finite_points = [(d, s) for s, d in zip(curve.sizes, curve.delta) if finite(d)]
    best, best_at = max(finite_points, key=lambda p: (p[0], -p[1])) if finite_points else (float("nan"), None)
    half = best / 2 if finite(best) and best > 0 else None
    to_half = first_reaching(curve.sizes, curve.delta, half) if half is not None else None
    to_fixed = first_reaching(curve.sizes, curve.delta, fixed)
    return {**identity, "unit": unit, "group": curve.group, "pairs": curve.pairs, "max_delta": best,
            "max_at": best_at, "half_threshold": half if half is not None else "",
            "size_to_half": to_half if to_half is not None else (NOT_REACHED if half is not None else "no gain"),
            "fixed_threshold": fixed, "size_to_fixed": to_fixed if to_fixed is not None else NOT_REACHED}


def by_identity(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Curve rows grouped by kernel identity, in sorted identity order."""
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault(table_key(row), []).append(row)
    return {k: out[k] for k in sorted(out, key=lambda k: tuple(str(v) for v in k))}


def figure_name(key: tuple) -> str:
    """curves_<the heatmap's file stem>.png, so a kernel's heatmap and curves sort side by side."""
    return KernelTable(*key).file_stem().replace("kernel_", "curves_", 1) + ".png"


def write_curves(results: list[dict], out_dir: Path | str, groups: dict[tuple, SkillGroups] | None = None) -> list[str]:
    """Write curves.csv, speed.csv and one figure per identity to `out_dir` (nothing when no cell has a curve);
    return the summary.md lines. `groups`: kernel_groups(results), computed here when not given."""
    rows = curve_rows(results)
    if not rows:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = kernel_groups(results) if groups is None else groups
    _write_csv(out_dir / "curves.csv", CURVE_COLUMNS, rows)
    intro = (f"Mean delta per group against adaptation size; the size to reach half the group's largest mean delta, "
             f"and to reach {FIXED_THRESHOLD:+.2f} (report/speed.csv, report/curves.csv).")
    speed, lines = [], ["## Learning curves", "", intro, ""]
    for key, identity_rows in by_identity(rows).items():
        identity = dict(zip(TABLE_IDENTITY, key))
        unit = str(identity_rows[0].get("unit") or "size")
        curves = group_curves(identity_rows, groups.get(groups_key(identity)))
        table = KernelTable(*key, controls=sorted({str(r.get("control")) for r in identity_rows}))
        image = draw_curves(table.title(), unit, curves, identity_rows, out_dir / figure_name(key))
        found = [speed_row(identity, unit, curve) for curve in curves]
        speed += found
        lines += _summary(table.title(), image.name, unit, found)
    _write_csv(out_dir / "speed.csv", SPEED_COLUMNS, speed)
    return lines


def _summary(title: str, image: str, unit: str, speed: list[dict]) -> list[str]:
    lines = [f"### {title}", "", f"![learning curves]({image})", "",
             f"| group | pairs | largest mean delta | {unit} to half of it | {unit} to {FIXED_THRESHOLD:+.2f} |",
             "|---|---|---|---|---|"]
    for row in speed:
        best = f"{row['max_delta']:+.3f} at {row['max_at']}" if finite(row["max_delta"]) else "n/a"
        lines.append(f"| {row['group']} | {row['pairs']} | {best} | {row['size_to_half']} | {row['size_to_fixed']} |")
    return [*lines, ""]


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
