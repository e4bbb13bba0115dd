"""A cell's learning curve: its learner and control at each adaptation size of learner.curve (demonstrations, or
optimizer steps), scored on every test skill by the cell's scorer in the cell's model session.

Every size is the learner's at_size(size) (ntkeval.learners.base lists the optional methods), so each point has keys
of its own in the stage cache, the full size shares the main kernel's, and a rerun recomputes nothing. The rows go to
result.json under "curve" and to W&B as a "curve" table with curve/<size>/delta_mean in the run summary.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager

from ntkeval.cell import Cell, SkillView, _Stages
from ntkeval.learners.base import Adaptation
from ntkeval.scorers.base import Role

log = logging.getLogger(__name__)


def curve_sizes(learner) -> list[int]:
    """The sizes of the learner's learning curve; [] for a learner without one (or without the optional method)."""
    sizes = getattr(learner, "curve_sizes", None)
    return list(sizes()) if callable(sizes) else []


def curve_unit(learner) -> str:
    """What a curve size counts: "demos", "steps", or "size" for a learner that does not say."""
    return str(getattr(learner, "curve_unit", "size"))


def sized_cell(cell: Cell, size: int) -> Cell:
    """The cell with its learner at `size` (its control follows: at_size's control is the control at that size). A
    shallow copy: Cell.__post_init__ already placed the format's instruction line and must not run twice."""
    sized = copy.copy(cell)
    sized.learner = cell.learner.at_size(size)
    sized.learner.bind_model(cell.model)
    return sized


class _SizedStages(_Stages):
    """The stages of one curve size: the cell's model session (the model loads once), adaptations of its own, and
    adapters switched on under names of their own (a learner at 10 steps is called tune-skill, as at 40)."""

    def __init__(self, cell: Cell, session, size: int):
        self.cell, self.session, self.size = cell, session, size
        self.context = cell.context(session)
        self.adaptations: dict[str, Adaptation] = {}

    @contextmanager
    def open(self, role: Role):
        adapted = Adaptation() if role.learner is None else self.adaptation(role.learner)
        adapter = None
        if adapted.adapter_dir is not None:
            adapter = f"{role.name}@{self.size}"
            self.session.load_adapter(adapter, adapted.adapter_dir)
        with self.session.language_model(adapter) as lm:
            yield lm, adapted.prefix


def score_curve(cell: Cell, stages: _Stages) -> list[dict]:
    """One row per (size, test skill): {"size", "unit", and the scorer's kernel row (test_skill, n, delta, ci_low,
    ci_high, p_learner, p_control, p_base, ...)}; [] when the learner has no curve."""
    rows, unit = [], curve_unit(cell.learner)
    for size in curve_sizes(cell.learner):
        sized = _SizedStages(sized_cell(cell, size), stages.session, size)
        for skill in cell.test_skills:
            row, _questions = cell.scorer.compare(SkillView(sized, skill))
            rows.append({"size": size, "unit": unit, **row})
            log.info("curve %s=%d: %s -> %s: delta %+.4f [%+.4f, %+.4f]", unit, size, cell.train_skill, skill,
                     row["delta"], row["ci_low"], row["ci_high"])
    return rows


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
