"""The work a grid of cells really needs once shared stages are counted once and cached ones are skipped."""

from __future__ import annotations

from dataclasses import dataclass

from ntkeval.cache import stable_hash
from ntkeval.learning_curve import curve_sizes, sized_cell


@dataclass
class GridPlan:
    cells: int = 0
    tunings: int = 0          # adapters to train
    tunings_cached: int = 0   # adapters already in the cache
    scorings: int = 0         # scoring stages (role x test skill: scores, samples, ...) to compute
    scorings_cached: int = 0  # scoring stages already in the cache

    def lines(self) -> list[str]:
        return [f"{self.cells} cells; after de-duplication:",
                f"  tunings: {self.tunings} to run, {self.tunings_cached} cached",
                f"  scorings (role x test skill): {self.scorings} to run, {self.scorings_cached} cached"]


def plan_grid(cells: list) -> GridPlan:
    """Count each distinct stage once across the grid; a tuning counts only if a score that needs it is missing.
    A learning curve's sizes add their scorings; their adapters are snapshots saved while the full one trains, so
    they add no tunings."""
    plan = GridPlan(cells=len(cells))
    seen_scores: set[str] = set()
    seen_stages: set[str] = set()
    sized = [(sized_cell(cell, size), False) for cell in cells for size in curve_sizes(cell.learner)]
    for cell, tunes in [(cell, True) for cell in cells] + sized:
        context = cell.context()
        for stage in cell.scorer.stages(cell.roles()):
            for skill in cell.test_skills:
                parts = cell.stage_parts(stage, skill)
                key = stable_hash([stage.kind, parts])
                if key in seen_scores:
                    continue
                seen_scores.add(key)
                if cell.cache.has(stage.kind, parts):
                    plan.scorings_cached += 1
                    continue
                plan.scorings += 1
                learner = stage.role.learner
                tuning = learner.stage(context) if learner is not None and tunes else None
                if tuning is not None and stable_hash(tuning) not in seen_stages:
                    seen_stages.add(stable_hash(tuning))
                    if cell.cache.has(*tuning):
                        plan.tunings_cached += 1
                    else:
                        plan.tunings += 1
    return plan
