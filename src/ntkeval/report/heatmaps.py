"""Annotated kernel heatmaps: one PNG per (model, learner, dataset), delta per square, CIs that exclude 0 starred.

Draws on a bare matplotlib Figure with the Agg canvas, so it needs no display and leaves pyplot's state alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ntkeval.report.tables import KernelTable, excludes_zero, finite, kernel_tables

CMAP = "RdBu_r"        # diverging: red where adapting helps the test skill, blue where it hurts
MIN_LIMIT = 0.05       # colour limit floor, so a kernel of tiny deltas is not painted at full saturation


def delta_matrix(table: KernelTable) -> np.ndarray:
    """Deltas as a rows x columns array; NaN where a square has no finite delta."""
    values = np.full((len(table.train_skills), len(table.test_skills)), np.nan)
    for i, train in enumerate(table.train_skills):
        for j, test in enumerate(table.test_skills):
            row = table.entries.get((train, test))
            if row is not None and finite(row.get("delta")):
                values[i, j] = row["delta"]
    return values


def _subtitle(table: KernelTable) -> str:
    ns = sorted({row.get("n") for row in table.entries.values() if row.get("n") is not None})
    questions = f"n = {ns[0]} questions per test skill" if len(ns) == 1 else "n varies by square"
    return f"delta = p_learner − p_control; bold* = 95% CI excludes 0; {questions}"


def _annotate(ax, table: KernelTable, values: np.ndarray, limit: float) -> None:
    for i, train in enumerate(table.train_skills):
        for j, test in enumerate(table.test_skills):
            if train == test:  # outline the diagonal: the skill the model was adapted to, scored on itself
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5,
                                       zorder=3))
            if np.isnan(values[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.93", edgecolor="0.6",
                                       hatch="///", linewidth=0))
                ax.text(j, i, table.gap_label(train), ha="center", va="center", fontsize=9, style="italic",
                        color="0.25", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
                continue
            strong = excludes_zero(table.entries[(train, test)])
            ax.text(j, i, f"{values[i, j]:+.2f}" + ("*" if strong else ""), ha="center", va="center",
                    fontsize=10, fontweight="bold" if strong else "normal",
                    color="white" if abs(values[i, j]) > 0.6 * limit else "black")


def heatmap_figure(table: KernelTable) -> Figure:
    """One table's annotated heatmap as a matplotlib Figure (Agg canvas attached)."""
    values = delta_matrix(table)
    limit = max(float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0, MIN_LIMIT)
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(max(5.0, 2.6 + 1.15 * n_cols), max(3.5, 1.9 + 0.62 * n_rows)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    _annotate(ax, table, values, limit)
    ax.set_xticks(range(n_cols), labels=table.test_skills, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n_rows), labels=table.train_skills)
    ax.set_xlabel("test skill (scored)")
    ax.set_ylabel("train skill (adapted to)")
    ax.set_title(f"{table.title()}\n{_subtitle(table)}", fontsize=10)
    fig.colorbar(image, ax=ax, label="delta", shrink=0.9)
    return fig


def draw_heatmap(table: KernelTable, path: Path) -> Path:
    """Write one table's heatmap to `path` (PNG) and return the path."""
    heatmap_figure(table).savefig(path, dpi=120)
    return path


def plot_kernels(results: list[dict], out_dir: Path | str) -> list[Path]:
    """One heatmap PNG per kernel table of `results` in `out_dir`; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in kernel_tables(results):
        if not table.test_skills:  # every cell of this table failed: nothing to draw, the problems list says so
            continue
        path = out_dir / f"{table.file_stem()}.png"
        suffix = 2
        while path in written:  # two names that sanitise alike ("a/b", "a-b") must not overwrite each other
            path = out_dir / f"{table.file_stem()}_{suffix}.png"
            suffix += 1
        written.append(draw_heatmap(table, path))
    return written
