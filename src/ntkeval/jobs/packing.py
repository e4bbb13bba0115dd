"""Packing a sweep's cells into jobs (`hydra.launcher.pack=row`): cells that share a model and a train skill run in
one job, in turn, on one loaded model (ntkeval.backends.session_pool), controls before the learners that need them.

Cells of different rows still share stages: every cell scores the untouched model on the same test questions. Run at
once, two jobs would meet at that stage's lock and one would hold its GPU waiting. So a stage that several rows need
is owned by the first cell that needs it, and a job that needs a stage owned by another job's cell is submitted only
once that cell has finished (the packed job marks each finished cell in the sweep dir). No job waits on another's
lock, and the owner's job goes on with the rest of its row meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
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
    cells: tuple[int, ...]                # indices into the sweep's jobs, in the order the job runs them
    after: frozenset[int] = frozenset()   # cells of other jobs that must have finished before it is submitted


def plan_packs(cells: list[CellNeeds]) -> list[PackedJob]:
    """One job per row (rows in the order of their first cell), its cells controls first; each job with the cells
    of other jobs it must start after.

    A stage is owned by the first cell in that order that needs it. A job starts after the owners, in other jobs,
    of every stage its cells need: then each stage is computed by one job while every other job that needs it
    waits unsubmitted, holding no GPU. Owners are always in earlier rows, so no two jobs wait for each other."""
    order = [_controls_first(row, cells) for row in rows([c.row for c in cells])]
    owner: dict[str, int] = {}
    for i in (i for job in order for i in job):
        for key in cells[i].stages:
            owner.setdefault(key, i)
    jobs = []
    for job in order:
        members = set(job)
        after = {owner[key] for i in job for key in cells[i].stages} - members
        jobs.append(PackedJob(tuple(job), frozenset(after)))
    return jobs


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


_CHECKED: dict[tuple[str, ...], tuple[Any, str]] = {}  # a job's sorted overrides -> (its Cell, its row)


def remember_checked(jobs: list[list[str]], cells: list, configs: list) -> None:
    """Keep the cells preflight built (without weights) for the command's jobs, so planning the packs does not
    compose and build them again."""
    for job, cell, cfg in zip(jobs, cells, configs):
        _CHECKED[_job_key(job)] = (cell, row_of(cfg))


def checked(job: list[str]) -> tuple[Any, str] | None:
    """(Cell, row) of a job preflight checked in this process, or None."""
    return _CHECKED.get(_job_key(job))


def _job_key(job: list[str]) -> tuple[str, ...]:
    """A job's overrides without Hydra's own (the launcher's jobs do not carry them; the command line does)."""
    return tuple(sorted(o for o in job if not o.lstrip("+~").startswith(("hydra.", "hydra/"))))


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


FINISHED_DIR = ".ntkeval-finished"  # in the sweep dir: one empty file per finished cell, named by its job number


STOP = "stop"  # beside the markers: the sweep stopped (a full disk), so a packed job starts no further cell


def finished_marker(finished_dir: str | Path, job_num: int) -> Path:
    folder = Path(finished_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / str(job_num)


def stop_marker(finished_dir: str | Path) -> Path:
    folder = Path(finished_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / STOP


class PackRunner:
    """The callable of one packed job: runs its cells in turn through the launcher's own `__call__` (one Hydra job
    each: its own job dir, log, result.json and W&B run) and returns their JobReturns. A cell that fails does not
    stop the others, except a fault every later cell would meet too (a full disk): those are returned not started."""

    def __init__(self, launcher: Any, finished_dir: str):
        self.launcher = launcher
        self.finished_dir = finished_dir  # where each finished cell is marked (finished_marker), for the command

    def __call__(self, cells: list[tuple]) -> list[JobReturn]:
        returns: list[JobReturn] = []
        for position, params in enumerate(cells):
            if (Path(self.finished_dir) / STOP).exists():
                returns += _not_started(cells[position:], "the sweep stopped")
                break
            returned = self.launcher(*params)
            finished_marker(self.finished_dir, params[2]).touch()  # done or failed: it computes nothing more
            returns.append(returned)
            if returned.status == JobStatus.FAILED:
                stopped = _drop_failed_frames(returned)
            if returned.status == JobStatus.FAILED and stopped.fatal:
                returns += _not_started(cells[position + 1:], f"the job stopped ({stopped.line})")
                break
        return returns

    def checkpoint(self, cells: list[tuple]) -> Any:
        """Requeue after preemption: the same cells again; those done are skipped (their result.json is there)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, cells)


def _not_started(cells: list[tuple], why: str) -> list[JobReturn]:
    return [JobReturn(overrides=list(params[0]), status=JobStatus.FAILED,
                      _return_value=CellFailed(Fault(f"not started: {why}"))) for params in cells]


def _drop_failed_frames(returned: JobReturn) -> Fault:
    """A failed cell's fault, with the exception it came in replaced by one that holds nothing else: its traceback
    (and the error it was raised from) keep the failing frames alive, with their batches, activations and
    optimizer states, which the row's next cells need the memory of. Only the fault goes back to the command."""
    fault = describe(returned._return_value)
    returned._return_value = CellFailed(fault)
    import gc

    gc.collect()
    try:
        from ntkeval.backends.huggingface.oom import free_accelerator_memory
    except ImportError:  # a backend without torch: nothing to free
        return fault
    free_accelerator_memory()
    return fault
