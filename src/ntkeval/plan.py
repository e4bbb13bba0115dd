"""The work a grid of cells really needs once shared stages are counted once and cached ones are skipped."""

from __future__ import annotations

from dataclasses import dataclass

from ntkeval.cache import stable_hash
from ntkeval.cell import SCORES


@dataclass
class GridPlan:
    cells: int = 0
    tunings: int = 0          # adapters to train
    tunings_cached: int = 0   # adapters already in the cache
    scorings: int = 0         # (learner, test skill) score sets to compute
    scorings_cached: int = 0  # score sets already in the cache

    def lines(self) -> list[str]:
        return [f"{self.cells} cells; after de-duplication:",
                f"  tunings: {self.tunings} to run, {self.tunings_cached} cached",
                f"  scorings (learner x test skill): {self.scorings} to run, {self.scorings_cached} cached"]


def plan_grid(cells: list) -> GridPlan:
    """Count each distinct stage once across the grid; a tuning counts only if a score that needs it is missing."""
    plan = GridPlan(cells=len(cells))
    seen_scores: set[str] = set()
    seen_stages: set[str] = set()
    for cell in cells:
        context = cell.context()
        for learner in cell.roles():
            for skill in cell.test_skills:
                parts = cell.score_parts(learner, skill)
                key = stable_hash(parts)
                if key in seen_scores:
                    continue
                seen_scores.add(key)
                if cell.cache.has(SCORES, parts):
                    plan.scorings_cached += 1
                    continue
                plan.scorings += 1
                stage = learner.stage(context) if learner is not None else None
                if stage is not None and stable_hash(stage) not in seen_stages:
                    seen_stages.add(stable_hash(stage))
                    if cell.cache.has(*stage):
                        plan.tunings_cached += 1
                    else:
                        plan.tunings += 1
    return plan
