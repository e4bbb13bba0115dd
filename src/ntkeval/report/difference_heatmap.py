"""The difference of two kernels as an annotated heatmap, in the style of the kernel heatmaps (ntkeval.report.heatmaps):
one square per (train, test) entry, the diagonal outlined, a star where the entry's interval excludes 0.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ntkeval.report.heatmaps import CMAP, MIN_LIMIT


def difference_figure(a: str, b: str, skills: list[str], cells: tuple[np.ndarray, ...], caption: str) -> Figure:
    """The heatmap of kernel a - kernel b per entry ((diff, low, high, paired) n x n arrays, as
    ntkeval.report.comparisons.difference_cells gives them), titled with `caption` (a line or two)."""
    diff, low, high, paired = cells
    limit = max(float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0, MIN_LIMIT)
    n = len(skills)
    fig = Figure(figsize=(max(5.0, 2.6 + 1.15 * n), max(3.5, 1.9 + 0.62 * n)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(diff), cmap=matplotlib.colormaps[CMAP].with_extremes(bad="white"),
                      vmin=-limit, vmax=limit, aspect="auto")
    for i in range(n):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5, zorder=3))
        for j in range(n):
            if np.isnan(diff[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.93", edgecolor="0.6", hatch="///",
                                       linewidth=0))
                ax.text(j, i, "missing", ha="center", va="center", fontsize=9, style="italic", color="0.25")
                continue
            strong = low[i, j] > 0 or high[i, j] < 0   # False for a NaN interval
            ax.text(j, i, f"{diff[i, j]:+.2f}" + ("*" if strong else ""), ha="center", va="center", fontsize=10,
                    fontweight="bold" if strong else "normal",
                    color="white" if abs(diff[i, j]) > 0.6 * limit else "black")
    ax.set_xticks(range(n), labels=skills, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=skills)
    ax.set_xlabel("test skill (scored)")
    ax.set_ylabel("train skill (adapted to)")
    shown = paired[~np.isnan(diff)]
    how = "paired over questions" if shown.all() else "MOVER of the entries' intervals" if not shown.any() else \
        "paired over questions where both scored them, else MOVER"
    ax.set_title(f"{a} − {b} · {caption}\nentry = delta({a}) − delta({b}); bold* = 95% CI excludes 0 ({how})",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label=f"delta({a}) − delta({b})", shrink=0.9)
    return fig
