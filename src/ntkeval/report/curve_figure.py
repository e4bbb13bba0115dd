"""The learning-curve figure of one kernel identity: mean delta against adaptation size per group (diagonal, same
group, other group) with interval bands, and each (train, test) pair as a faint line behind them.

Draws on a bare matplotlib Figure with the Agg canvas, as the heatmaps do: no display, pyplot's state left alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ntkeval.report.tables import finite

COLOURS = {"diagonal": "tab:red", "same group": "tab:orange", "other group": "tab:blue"}
AXIS = {"demos": "demonstrations in the prompt", "steps": "optimizer steps"}


def draw_curves(title: str, unit: str, curves: list, rows: list[dict], path: Path) -> Path:
    """Write the figure of one identity's group curves (report.curves.GroupCurve) and pair rows to `path` (PNG)."""
    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for points in _pairs(rows).values():
        sizes = sorted(points)
        ax.plot(sizes, [points[s] for s in sizes], color="0.75", linewidth=0.7, zorder=1)
    for curve in curves:
        colour = COLOURS.get(curve.group, "black")
        ax.fill_between(curve.sizes, curve.ci_low, curve.ci_high, color=colour, alpha=0.15, linewidth=0, zorder=2)
        ax.plot(curve.sizes, curve.delta, marker="o", color=colour, linewidth=2, zorder=3,
                label=f"{curve.group} ({curve.pairs} pair{'s' if curve.pairs != 1 else ''})")
    sizes = sorted({int(r["size"]) for r in rows})
    if sizes and max(sizes) >= 8:  # doubling sizes (1, 2, 4, 8, ...) spread evenly; 0 stays on a linear stretch
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(sizes, labels=[str(s) for s in sizes])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel(AXIS.get(unit, unit))
    ax.set_ylabel("delta = p_learner − p_control")
    ax.set_title(f"{title}\nmean delta per group, band: mean of the pairs' 95% intervals; grey: each pair",
                 fontsize=9)
    if curves:
        ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=120)
    return path


def _pairs(rows: list[dict]) -> dict[tuple, dict[int, float]]:
    pairs: dict[tuple, dict[int, float]] = {}
    for row in rows:
        if finite(row.get("delta")):
            pairs.setdefault((row["train_skill"], row["test_skill"]), {})[int(row["size"])] = float(row["delta"])
    return pairs
