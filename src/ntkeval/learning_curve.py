"""A cell's learning curve: its learner and control at each adaptation size of learner.curve (demonstrations, or
optimizer steps), scored on every test skill by the cell's scorer in the cell's model session (ntkeval.cell's
score_curve does the scoring with what is here).

Every size is the learner's at_size(size) (ntkeval.learners.base lists the optional methods), so each point has keys
of its own in the stage cache, the full size shares the main kernel's, and a rerun recomputes nothing. The rows go to
result.json under "curve" and to W&B as a "curve" table with curve/<size>/delta_mean in the run summary.
"""

from __future__ import annotations

import copy


def curve_sizes(learner) -> list[int]:
    """The sizes of the learner's learning curve; [] for a learner without one (or without the optional method)."""
    sizes = getattr(learner, "curve_sizes", None)
    return list(sizes()) if callable(sizes) else []


def curve_unit(learner) -> str:
    """What a curve size counts: "demos", "steps", or "size" for a learner that does not say."""
    return str(getattr(learner, "curve_unit", "size"))


def sized_cell(cell, size: int):
    """The cell with its learner at `size` (its control follows: at_size's control is the control at that size). A
    shallow copy: Cell.__post_init__ already placed the format's instruction line and must not run twice."""
    sized = copy.copy(cell)
    sized.learner = cell.learner.at_size(size)
    sized.learner.bind_model(cell.model)
    return sized


def mirror_curve(tracker, result: dict) -> None:
    """The curve as W&B sees it: a "curve" table of the rows and curve/<size>/delta_mean (mean over test skills)."""
    rows = result.get("curve") or []
    if not rows:
        return
    sizes: dict[int, list[float]] = {}
    for row in rows:
        sizes.setdefault(row["size"], []).append(row["delta"])
    tracker.summary({f"curve/{size}/delta_mean": sum(d) / len(d) for size, d in sizes.items()})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tracker.table("curve", columns, [[row.get(c) for c in columns] for row in rows])
