"""Packing a sweep's cells into jobs (`hydra.launcher.pack=row`): cells that share a model and a train skill run in
one job, in turn, on one loaded model (ntkeval.backends.session_pool), controls before the learners that need them.

Cells of different rows still share stages: every cell scores the untouched model on the same test questions. Run at
once, two jobs would meet at that stage's lock and one would hold its GPU waiting. So the jobs come in waves: the
cells that first need a stage that other rows need too (its owners) run in an early wave, and the cells that need
what they compute run in a later one, submitted when the earlier wave has ended. No job waits on another's lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from ntkeval.cache import stable_hash
from ntkeval.jobs.faults import CellFailed, Fault, describe

log = logging.getLogger(__name__)

PACKS = ("none", "row")  # hydra.launcher.pack: one job per cell, or one job per model and train skill


def row_of(cfg: DictConfig) -> str:
    """The packing row of a job's composed config: its model (the whole model node, resolved), device and train
    skill. Cells of one row load the same weights, so one job can run them all on one loaded model."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    train = cfg.pair.train
    train = list(train) if OmegaConf.is_list(train) else str(train)
    return stable_hash({"model": model, "device": str(cfg.device), "train": train}, length=12)


def rows(keys: list[str]) -> list[list[int]]:
    """Job indices grouped by row, in order of each row's first job (jobs keep their order within a row)."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return list(groups.values())


@dataclass(frozen=True)
class CellNeeds:
    """What the packing plan knows of one cell: its row, the learner names it adapts (its own and its control's)
    and the keys of the stages it needs that the cache does not hold yet."""
    row: str
    learner: str
    control: str | None
    stages: frozenset[str]


@dataclass(frozen=True)
class PackedJob:
    wave: int
    cells: tuple[int, ...]  # indices into the sweep's jobs, in the order the job runs them


def plan_packs(cells: list[CellNeeds]) -> list[PackedJob]:
    """Jobs of the cells, one per row and wave, in wave order, each with its cells controls first.

    A stage needed by cells of several rows is owned by the first of them (rows in sweep order, controls first).
    A cell runs in a wave after the owners in other rows of every stage it needs (in the same wave as an owner in its
    own row: one job runs them in turn). Cells of a row that owns such stages but own none themselves move to the
    next wave, so the first wave holds only what the others wait for."""
    order = [i for row in rows([c.row for c in cells]) for i in _controls_first(row, cells)]
    owner: dict[str, int] = {}
    for i in order:
        for key in cells[i].stages:
            owner.setdefault(key, i)
    shared = {key for key, first in owner.items()
              if any(key in cells[i].stages and cells[i].row != cells[first].row for i in order)}
    wave: dict[int, int] = {}
    for i in order:
        needed = [owner[key] for key in cells[i].stages if owner[key] != i]
        wave[i] = max([wave[o] + (cells[o].row != cells[i].row) for o in needed], default=0)
    if shared and max(wave.values()) > 0:
        owns = {owner[key] for key in shared}
        owning_rows = {cells[o].row for o in owns if wave[o] == 0}
        for i in order:
            if wave[i] == 0 and i not in owns and cells[i].row in owning_rows:
                wave[i] = 1
    jobs: dict[tuple[int, str], list[int]] = {}
    for i in order:
        jobs.setdefault((wave[i], cells[i].row), []).append(i)
    return [PackedJob(w, tuple(members)) for (w, _), members in sorted(jobs.items(), key=lambda kv: kv[0][0])]


def _controls_first(row: list[int], cells: list[CellNeeds]) -> list[int]:
    """A row's cells, each learner before the cells that use it as their control, and a control's control before
    both (stable otherwise): the depth of a learner is how many control links lead down to it."""
    users: dict[str, set[str]] = {}
    for i in row:
        if cells[i].control is not None and cells[i].control != cells[i].learner:
            users.setdefault(cells[i].control, set()).add(cells[i].learner)

    def depth(learner: str, seen: frozenset = frozenset()) -> int:
        above = [u for u in users.get(learner, ()) if u not in seen]  # `seen`: a cycle cannot loop forever
        return max((1 + depth(u, seen | {learner}) for u in above), default=0)

    return sorted(row, key=lambda i: -depth(cells[i].learner))


def cell_needs(cell, row: str) -> CellNeeds:
    """The CellNeeds of a built Cell (ntkeval.cell.Cell; built without weights, as preflight builds it)."""
    stages = set()
    context = cell.context()
    for stage in cell.scorer.stages(cell.roles()):
        for skill in cell.test_skills:
            parts = cell.stage_parts(stage, skill)
            if not cell.cache.has(stage.kind, parts):
                stages.add(stable_hash([stage.kind, parts]))
    control = cell.learner.control()
    for learner in (cell.learner, control):
        built = learner.stage(context) if learner is not None else None
        if built is not None and not cell.cache.has(*built):
            stages.add(stable_hash(list(built)))
    return CellNeeds(row=row, learner=cell.learner.name, control=control.name if control is not None else None,
                     stages=frozenset(stages))


class PackRunner:
    """The callable of one packed job: runs its cells in turn through the launcher's own `__call__` (one Hydra job
    each: its own job dir, log, result.json and W&B run) and returns their JobReturns. A cell that fails does not
    stop the others, except a fault every later cell would meet too (a full disk): those are returned not started."""

    def __init__(self, launcher: Any):
        self.launcher = launcher

    def __call__(self, cells: list[tuple]) -> list[JobReturn]:
        returns: list[JobReturn] = []
        for position, params in enumerate(cells):
            returned = self.launcher(*params)
            returns.append(returned)
            if returned.status == JobStatus.FAILED and describe(returned._return_value).fatal:
                stopped = describe(returned._return_value)
                for rest in cells[position + 1:]:
                    returns.append(JobReturn(overrides=list(rest[0]), status=JobStatus.FAILED, _return_value=CellFailed(
                        Fault(f"not started: the job stopped ({stopped.line})"))))
                break
        return returns

    def checkpoint(self, cells: list[tuple]) -> Any:
        """Requeue after preemption: the same cells again; those done are skipped (their result.json is there)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, cells)
