"""The command's side of the `local` and `slurm` launchers (hydra_plugins/ntkeval_launcher): submit a sweep's cells
with submitit, wait for every one of them, and tell each fault in one line.

It replaces hydra-submitit-launcher's `launch`, which re-raises the first failed job's traceback (82 lines for a
scancel) and stops waiting for the others. Here a refused submission (controller down) ends the command at once
with nothing submitted and nothing left behind; a job Slurm ended, or a cell that failed, is recorded for the
summary; a fault every later cell would meet too (a full disk) cancels the cells not yet started.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from ntkeval.build import build_cell
from ntkeval.jobs.callbacks import CREATED
from ntkeval.jobs.faults import Fault, Stop, describe, ended_by_scheduler, from_traceback_text, record
from ntkeval.jobs.packing import (
    FINISHED_DIR,
    PACKS,
    STOP,
    PackedJob,
    PackRunner,
    cell_needs,
    checked,
    plan_packs,
    row_of,
    stop_marker,
)
from ntkeval.preflight import _MakeOnce, _without_hydra

log = logging.getLogger(__name__)

_POLL_S = (0.25, 1.0)  # first and longest pause between looks at the jobs (a look is a file check per job;
#                        submitit rate-limits its own sacct calls)
# sbatch's words when it cannot talk to slurmctld at all (as opposed to refusing the request)
_UNREACHABLE = re.compile(r"contact slurm controller|connect(ion)? (failure|refused)|timed out|Zero Bytes|"
                          r"Unable to establish", re.IGNORECASE)
_UNFINISHED = ("PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED")  # not started (again) yet: cancellable at no cost


def launch_and_wait(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                    cluster: str) -> list[JobReturn]:
    """Submit every job, wait for all, record each failure (faults.RECORDED) and return the completed jobs'
    returns: a failed one returned to Hydra's sweeper would be re-raised there as a traceback.

    With pack=row the cells go in packed jobs (ntkeval.jobs.packing); a job that needs a stage another job's cell
    computes is submitted once that cell has finished, so no job holds a GPU while waiting on a lock."""
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    overrides = [list(o) for o in job_overrides]
    jobs = _jobs(launcher, overrides)
    finished_dir = sweep_dir / FINISHED_DIR
    for i in range(len(overrides)):  # a marker left by an earlier run of this sweep would release a job too early
        (finished_dir / str(initial_job_idx + i)).unlink(missing_ok=True)
    (finished_dir / STOP).unlink(missing_ok=True)
    returns, fatal = _run(launcher, jobs, overrides, initial_job_idx, cluster, sweep_dir)
    if fatal is not None:
        raise Stop(fatal)
    return returns


def _jobs(launcher: Any, overrides: list[list[str]]) -> list:
    """The jobs to submit (packing.PackedJob: the cells each runs, the cells it starts after): one cell per job with
    pack=none; with pack=row, ntkeval.jobs.packing's plan."""
    pack = launcher.params.get("pack", "none")
    if pack not in PACKS:  # preflight refuses it first; this guards a launcher built elsewhere
        raise Stop(Fault(f"hydra.launcher.pack={pack!r} is invalid; valid choices: {', '.join(PACKS)}", rerun=None),
                   summarise=False)
    if pack == "none":
        return [PackedJob((index,)) for index in range(len(overrides))]
    start = time.monotonic()
    jobs = plan_packs(_cell_needs(launcher, overrides))
    log.info("packed %d cells in %d jobs, %d of them submitted once cells of others have finished (planned in "
             "%.1f s, %d cells built again)", len(overrides), len(jobs), sum(bool(job.after) for job in jobs),
             time.monotonic() - start, sum(checked(job) is None for job in overrides))
    return jobs


def _run(launcher: Any, jobs: list, overrides: list[list[str]], initial_job_idx: int, cluster: str,
         sweep_dir: Path) -> tuple[list[JobReturn], Fault | None]:
    """Submit each job once the cells it starts after have finished, wait for every job, in the order they end;
    returns the completed cells' returns and the first fatal fault."""
    blocked, running = list(jobs), {}  # running: submitit job -> PackedJob
    finished: set[int] = set()          # cells that have finished (their job ended, or the packed job marked them)
    returns: list[JobReturn] = []
    fatal, stopped, pause, first = None, set(), _POLL_S[0], True
    while blocked or running:
        ready = [job for job in blocked if job.after <= finished] if fatal is None else []
        if ready:
            try:
                submitted = _submit(launcher, overrides, [list(job.cells) for job in ready], initial_job_idx,
                                    cluster, sweep_dir, first=first)
            except Stop as refused:  # a later submission: jobs already running still finish and are waited for
                if first:
                    raise
                fatal, submitted, ready = refused.fault, [], []
                _stop_packed_jobs(sweep_dir)
            first, pause = False, _POLL_S[0]
            running.update(zip(submitted, ready))
            blocked = [job for job in blocked if job not in ready]
        for handle, job in list(running.items()):
            if not handle.done():
                continue
            del running[handle]
            finished.update(job.cells)
            if handle in stopped:
                for cell in job.cells:
                    record(overrides[cell], Fault(f"not started: the sweep stopped ({fatal.line})"))
                continue
            for cell, (returned, fault) in zip(job.cells, _outcomes(handle, len(job.cells), cluster, sweep_dir)):
                if returned is not None:
                    returns.append(returned)
                    continue
                record(overrides[cell], fault)
                log.error("job %s (#%d) failed: %s", handle.job_id, cell, fault.line)
                if fault.fatal and fatal is None:
                    fatal = fault
                    _stop_packed_jobs(sweep_dir)  # running packed jobs start no further cell
                    stopped = {h for h in running if h.state.split()[0] in _UNFINISHED}
                    for h in stopped:
                        h.cancel(check=False)
        if fatal is not None and blocked:
            for cell in (cell for job in blocked for cell in job.cells):
                record(overrides[cell], Fault(f"not started: the sweep stopped ({fatal.line})"))
            blocked = []
        waited = {cell for job in blocked for cell in job.after} - finished
        finished.update(cell for cell in waited if (sweep_dir / FINISHED_DIR / str(initial_job_idx + cell)).exists())
        if running and not any(job.after <= finished for job in blocked):
            time.sleep(pause)
            pause = min(pause * 1.5, _POLL_S[1])
    return returns, fatal


def _stop_packed_jobs(sweep_dir: Path) -> None:
    """Tell running packed jobs to start no further cell (packing.PackRunner looks before each)."""
    try:
        stop_marker(sweep_dir / FINISHED_DIR).touch()
    except OSError:  # the full disk that stopped the sweep may refuse even this; the jobs' cells then fail on it
        pass


def _cell_needs(launcher: Any, overrides: list[list[str]]) -> list:
    """Each job's row and the uncached stages it needs, from its config composed as its job will compose it and its
    cell built without weights (as preflight built it)."""
    loader, make_once, needs = launcher.hydra_context.config_loader, _MakeOnce(), []
    for job in overrides:
        known = checked(job)  # built by preflight in this process: the same overrides, the same cell
        if known is None:
            cfg = _without_hydra(loader.load_sweep_config(launcher.config, list(job)))  # hydra.job is set in the job
            known = build_cell(cfg, out_dir=Path("."), make=make_once), row_of(cfg)
        needs.append(cell_needs(*known))
    return needs


def _executor(launcher: Any):
    """The executor exactly as hydra-submitit-launcher 1.2 builds it (BaseSubmititLauncher.launch)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from hydra_plugins.ntkeval_launcher import OWN_SETTINGS

    kind = launcher._EXECUTOR
    params = {k: v for k, v in launcher.params.items() if k not in OWN_SETTINGS}  # ntkeval's, not sbatch's
    init_keys = {"max_num_timeout", "submitit_folder"}
    executor = submitit.AutoExecutor(cluster=kind, folder=params["submitit_folder"],
                                     **{f"{kind}_{k}": v for k, v in params.items() if k == "max_num_timeout"})
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"{kind}_{k}": v for k, v in params.items()
                                  if k not in init_keys})
    return executor


def _submit(launcher: Any, overrides: list[list[str]], jobs: list[list[int]], initial_job_idx: int, cluster: str,
            sweep_dir: Path, first: bool = True) -> list:
    """Submit one job per entry of `jobs` (the cells it runs); a job of one cell runs it as hydra-submitit-launcher
    does, a job of several runs them in turn in one process (packing.PackRunner)."""
    import submitit

    executor = _executor(launcher)
    packed = launcher.params.get("pack", "none") != "none"
    if packed and launcher.params.get("timeout_min"):  # timeout_min is per cell: a job of n cells may take n times it
        executor.update_parameters(timeout_min=int(launcher.params["timeout_min"]) * max(len(job) for job in jobs))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        sweep_dir.chmod(int(str(launcher.config.hydra.sweep.mode), 8))
    state = Singleton.get_state()
    params = [(list(overrides[i]), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}", state)
              for i in range(len(overrides))]
    folder = submitit.core.utils.JobPaths.get_first_id_independent_folder(launcher.params["submitit_folder"])
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        # submitit prints sbatch's error output itself before raising it; it is told once, below
        with contextlib.redirect_stderr(io.StringIO()):
            if packed:
                submitted = executor.map_array(PackRunner(launcher, str(sweep_dir / FINISHED_DIR)),
                                               [[params[i] for i in job] for job in jobs])
            else:
                submitted = executor.map_array(launcher, *zip(*[params[i] for (i,) in jobs]))
    except (submitit.core.utils.FailedJobError, OSError) as error:
        _remove_unsubmitted(sweep_dir if first else None, folder, before)
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        message = lines[-1] if lines else type(error).__name__
        if _UNREACHABLE.search(str(error)):
            raise Stop(Fault(f"cannot reach the {cluster} controller: {message}", rerun=None),
                       summarise=not first) from None
        raise Stop(Fault(f"{cluster} refused the sweep: {message}", rerun=None), summarise=not first) from None
    cells = sum(len(job) for job in jobs)
    log.info("submitted %d cells%s to %s, sweep dir %s", cells, f" in {len(jobs)} packed jobs" if packed else "",
             cluster, sweep_dir)
    for job, handle in zip(jobs, submitted):
        for i in job:
            log.info("\t#%d (job %s): %s", initial_job_idx + i, handle.job_id, " ".join(filter_overrides(overrides[i])))
    return submitted


def _remove_unsubmitted(sweep_dir: Path | None, folder: Path, before: set[Path]) -> None:
    """Nothing was submitted: remove what this command wrote for the submission (the whole sweep dir if it made it:
    Hydra's multirun.yaml, the lock, the job pickles), so no half-made sweep is left to mistake for a real one.
    sweep_dir None: a later wave, after which the sweep dir holds earlier waves' results."""
    if sweep_dir is not None and str(sweep_dir) in CREATED:
        shutil.rmtree(sweep_dir, ignore_errors=True)
        return
    for path in set(folder.iterdir()) - before if folder.is_dir() else ():
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _outcomes(job, cells: int, cluster: str, sweep_dir: Path) -> list[tuple[JobReturn | None, Fault | None]]:
    """A finished job's (return, fault) per cell it ran: the job's fault for each of its cells when it ended
    outside them (a packed job's cells that finished before it ended have their result.json all the same)."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    fault = None
    if not job.paths.result_pickle.exists():
        state = job.state
        if state.split() and state.split()[0] not in ("COMPLETED", "FINISHED", "DONE", "UNKNOWN"):
            fault = ended_by_scheduler(state, cluster)  # no result will come: do not wait submitit's 15 s
    if fault is None:
        try:
            returned = job.results()[0]
        except UncompletedJobError:
            fault = ended_by_scheduler(job.state, cluster)
        except FailedJobError as error:  # the job failed outside the cell: only the traceback's text came back
            fault = from_traceback_text(str(error), out_dir=sweep_dir)
    if fault is not None:
        return [(None, fault)] * cells
    return [_cell_outcome(r, sweep_dir) for r in (returned if isinstance(returned, list) else [returned])]


def _cell_outcome(returned: JobReturn, sweep_dir: Path) -> tuple[JobReturn | None, Fault | None]:
    if returned.status == JobStatus.FAILED:
        return None, describe(returned._return_value, out_dir=sweep_dir)
    return returned, None
