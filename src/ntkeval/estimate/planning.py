"""Planning a checked grid before it runs: the jobs the launcher makes of its cells, each job's peak GPU memory
checked against the GPU it asks for (a job that cannot fit refuses the grid in one line), and with dry_run=true the
plan printed and, with calibrate=true, the grid's GPU-hours from one cell per model timed here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ntkeval.errors import UserError, shorten
from ntkeval.jobs.packing import PACKS, cell_needs, plan_packs, row_of
from ntkeval.schema import host

RUNS_HERE = ("BasicLauncher", "LocalLauncher")  # launchers whose cells run on this machine (slurm: on GPU nodes)


@dataclass(frozen=True)
class Launch:
    """What planning reads of the command line (preflight reads it from the composed config)."""
    launcher: str            # hydra.launcher._target_
    pack: Any                # hydra.launcher.pack (None where the launcher has no such key)
    gpu_memory_gb: Any       # hydra.launcher.gpu_memory_gb
    dry_run: bool
    calibrate: bool


def planning_settings(launch: Launch) -> None:
    """calibrate=true needs dry_run=true, pack is none or row, and gpu_memory_gb is null or a size: one line, before
    any stage runs."""
    if launch.calibrate and not launch.dry_run:
        raise UserError("calibrate=true times one cell per model to estimate the grid's GPU-hours, and runs with "
                        "dry_run=true only; expected dry_run=true calibrate=true (or calibrate=false)")
    pack = launch.pack
    if pack is not None and pack not in PACKS:
        raise UserError(f"hydra.launcher.pack={shorten(pack)} is invalid; valid choices: {', '.join(PACKS)} (none: one "
                        "job per cell; row: one job per model and train skill)")
    size = launch.gpu_memory_gb
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size)
                             or size <= 0):
        raise UserError(f"hydra.launcher.gpu_memory_gb={shorten(size)} is invalid; valid: null (unchecked) or the "
                        "GPU memory of a job in GiB, a number > 0, e.g. 80")


@dataclass
class Jobs:
    """How the launcher turns the grid's cells into jobs: cell indices per job, each cell's device where its job
    runs, whether the cells run in this process, and the GPU memory (GiB, what it is) a job must fit, if any."""
    groups: list[list[int]]
    devices: list[str]
    in_process: bool
    limit: tuple[float, str] | None
    waiting: int = 0  # pack=row: jobs submitted once cells of other jobs have finished (ntkeval.jobs.packing)

    @classmethod
    def of(cls, launch: Launch, cells: list, configs: list) -> Jobs:
        """configs: each cell's composed config, in the order of `cells` (its device as written, and its packing row,
        read by ntkeval.jobs.packing.row_of as the launcher reads it)."""
        in_process, here = launch.launcher.endswith("BasicLauncher"), launch.launcher.endswith(RUNS_HERE)
        devices = [_job_device(str(cfg.device), here) for cfg in configs]
        if not in_process and (launch.pack or "none") == "row":  # the launcher's own plan
            needs = [cell_needs(cell, row_of(cfg)) for cell, cfg in zip(cells, configs)]
            packed = plan_packs(needs)
            groups, waiting = [list(job.cells) for job in packed], sum(bool(job.after) for job in packed)
        else:
            groups, waiting = [[i] for i in range(len(cells))], 0
        size = launch.gpu_memory_gb
        limit = (float(size), f"hydra.launcher.gpu_memory_gb={size:g}") if size is not None and not in_process \
            else _visible_gpu(devices) if in_process else None
        return cls(groups, devices, in_process, limit, waiting)


def _job_device(device: str, here: bool) -> str:
    """The device a job's cells use: resolved on this machine when they run here; on a cluster's GPU node, auto
    means cuda (the dtype of the weights, and so the estimate, depends on it)."""
    if here:
        from ntkeval.backends.huggingface.loading import resolve_device

        return resolve_device(device)
    return "cuda" if device == "auto" else device


def _visible_gpu(devices: list[str]) -> tuple[float, str] | None:
    """The smallest visible GPU the in-process cells use: (its memory in GiB, what it is); None on CPU. Always
    checked: the refusal takes each job at its smallest batches (ntkeval.estimate.jobs.refusal), so a job that
    would only shrink its batches on this GPU runs."""
    cuda = sorted({d for d in devices if d.startswith("cuda")})
    if not cuda:
        return None
    import torch

    sizes = []
    for device in cuda:
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        size = props.total_memory / 2 ** 30
        sizes.append((size, f"the visible GPU {device} ({props.name}) has {size:.1f} GiB"))
    return min(sizes)


def plan_jobs(launch: Launch, cells: list, configs: list) -> None:
    """Estimate each job's memory when there is a limit to check or a dry run to print; with dry_run=true print the
    plan (and calibrate); refuse a job that cannot fit, in one line."""
    jobs = Jobs.of(launch, cells, configs)
    estimates = None
    if launch.dry_run or jobs.limit is not None:
        from ntkeval.estimate.jobs import estimate_jobs

        estimates = estimate_jobs(cells, jobs.devices, jobs.groups)
    if launch.dry_run:
        print_plan(launch, cells, jobs, estimates)
        return
    refuse_oversized(estimates, jobs.limit)


def refuse_oversized(estimates, limit: tuple[float, str] | None) -> None:
    """One line naming the largest job that cannot fit, before anything runs."""
    if estimates is None or limit is None:
        return
    from ntkeval.estimate.jobs import refusal

    line = refusal(estimates, limit)
    if line is not None:
        raise UserError(line)


def print_plan(launch: Launch, cells: list, jobs: Jobs, estimates) -> None:
    """dry_run=true: the cells, the de-duplicated work, each job's memory; refuse what cannot fit; then, with
    calibrate=true, time one cell per model and estimate the grid's GPU-hours."""
    from ntkeval.estimate.jobs import memory_lines
    from ntkeval.plan import plan_grid

    for cell in cells:
        shown = f" format={cell.format.name}" if cell.format.reasoning else ""
        print(f"cell: {cell.model.name} {cell.learner.name} {cell.dataset.name} train={cell.train_skill} "
              f"tests={len(cell.test_skills)} seed={cell.seed}{shown}")
    plan = plan_grid(cells)
    print("\n".join(plan.lines()))
    if any(len(group) > 1 for group in jobs.groups):
        print(f"packed: {len(cells)} cells in {len(jobs.groups)} jobs (one per model and train skill); {jobs.waiting} "
              f"of them are submitted once the cells computing stages they share with other jobs have finished")
    print("\n".join(memory_lines(estimates, jobs.limit)), flush=True)
    refuse_oversized(estimates, jobs.limit)
    if launch.calibrate:
        print("\n".join(calibrate(cells, plan, jobs)))


def calibrate(cells: list, plan, jobs: Jobs) -> list[str]:
    """Time one cell per model here (on the device it resolves to on this machine) and extrapolate."""
    from ntkeval.estimate.calibration import estimate_lines, model_loads, pick_cells, time_cell, timing_lines

    chosen = pick_cells(cells)
    for cell in chosen.values():
        why = host.device_problem(str(cell.device))
        if why:
            raise UserError(f"calibrate=true times cells on this machine, and device={cell.device} is invalid here "
                            f"({why}); expected device=auto or cpu for the calibration")
    timings = {}
    for model, cell in chosen.items():
        print(f"calibrating: {cell.model.name} {cell.learner.name} train={cell.train_skill} on {cell.device} ...",
              flush=True)
        try:
            timings[model] = time_cell(cell)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001  (the cell's own failure, in one line: the grid would meet it too)
            raise UserError(f"calibrate=true: the cell {cell.model.name} {cell.learner.name} "
                            f"train={cell.train_skill} failed ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:300]})") from None
    loads = model_loads(cells, jobs.groups, jobs.in_process)
    return timing_lines(timings, plan) + estimate_lines(plan, timings, loads)
