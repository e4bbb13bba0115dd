"""The work a grid of cells really needs once shared stages are counted once and cached ones are skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

from ntkeval.cache import stable_hash
from ntkeval.learning_curve import curve_sizes, sized_cell


@dataclass
class GridPlan:
    cells: int = 0
    tunings: int = 0          # adapters to train
    tunings_cached: int = 0   # adapters already in the cache
    scorings: int = 0         # scoring stages (role x test skill: scores, samples, ...) to compute
    scorings_cached: int = 0  # scoring stages already in the cache
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (model_id, stage kind) -> entries to compute
    models: dict[str, str] = field(default_factory=dict)  # model_id -> the model's name
    kinds_seen: set[str] = field(default_factory=set)  # every stage kind of the grid, to compute or cached

    def count(self, model: str, kind: str) -> None:
        self.runs[model, kind] = self.runs.get((model, kind), 0) + 1

    def kinds(self, model: str) -> dict[str, int]:
        """Entries of each stage kind the model's cells must compute (what calibration multiplies)."""
        return {kind: n for (m, kind), n in sorted(self.runs.items()) if m == model}

    def lines(self) -> list[str]:
        return [f"{self.cells} cells; after de-duplication:",
                f"  tunings: {self.tunings} to run, {self.tunings_cached} cached",
                f"  scorings (role x test skill): {self.scorings} to run, {self.scorings_cached} cached"]


def plan_grid(cells: list) -> GridPlan:
    """Count each distinct stage once across the grid; a tuning counts only if a score that needs it is missing.
    A learning curve's sizes add their scorings. Their adapters are snapshots saved while the full adapter trains,
    so they add no tuning, unless the full adapter is cached already: then the largest missing size trains (it saves
    the smaller sizes on its way; ntkeval.cell.score_curve scores the sizes largest first)."""
    plan = GridPlan(cells=len(cells), models={model_id(cell): cell.model.name for cell in cells})
    seen_scores: set[str] = set()
    seen_stages: set[str] = set()
    for cell in cells:
        _count(plan, cell, cell, seen_scores, seen_stages)
    for cell in cells:  # the curves after every full adapter is planned: a full one trained here leaves snapshots
        for size in sorted(curve_sizes(cell.learner), reverse=True):
            _count(plan, sized_cell(cell, size), cell, seen_scores, seen_stages)
    return plan


def model_id(cell) -> str:
    """The model as the cell loads it (loader identity and loaded dtype), short: calibration times each one."""
    return stable_hash(cell.model_key(), length=8)


def _count(plan: GridPlan, cell, full, seen_scores: set[str], seen_stages: set[str]) -> None:
    """Count `cell`'s stages (a cell, or one size of `full`'s learning curve) not counted yet."""
    context = cell.context()
    model = model_id(cell)
    for stage in cell.scorer.stages(cell.roles()):
        for skill in cell.test_skills:
            parts = cell.stage_parts(stage, skill)
            key = stable_hash([stage.kind, parts])
            if key in seen_scores:
                continue
            seen_scores.add(key)
            plan.kinds_seen.add(stage.kind)
            if cell.cache.has(stage.kind, parts):
                plan.scorings_cached += 1
                continue
            plan.scorings += 1
            plan.count(model, stage.kind)
            learner = stage.role.learner
            tuning = learner.stage(context) if learner is not None else None
            if tuning is None or stable_hash(tuning) in seen_stages:
                continue
            seen_stages.add(stable_hash(tuning))
            plan.kinds_seen.add(tuning[0])
            if cell.cache.has(*tuning):
                plan.tunings_cached += 1
            elif cell is full or not _snapshot_comes(learner, full, context, seen_stages):
                plan.tunings += 1
                plan.count(model, tuning[0])


def _snapshot_comes(learner, full, context, seen_stages: set[str]) -> bool:
    """Whether a curve size's adapter is saved on the way by a tuning that runs anyway: the full learner's (or its
    control's) adapter, or a larger size's, trained in this grid."""
    for whole in (full.learner, full.learner.control()):
        if whole is None or whole.name != learner.name:
            continue
        whole_stage = whole.stage(context)
        if whole_stage is None:
            return False
        if stable_hash(whole_stage) in seen_stages and not full.cache.has(*whole_stage):
            return True  # the full adapter trains here and saves this size
        larger = [whole.at_size(s).stage(context) for s in curve_sizes(whole) if s > _steps(learner)]
        return any(stable_hash(st) in seen_stages and not full.cache.has(*st) for st in larger if st is not None)
    return False


def _steps(learner) -> int:
    return int(getattr(learner, "steps", 0) or getattr(learner, "demos", 0) or 0)
