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

from ntkeval.jobs.callbacks import CREATED
from ntkeval.jobs.faults import Fault, Stop, describe, ended_by_scheduler, from_traceback_text, record

log = logging.getLogger(__name__)

_POLL_S = (0.5, 5.0)   # first and longest pause between looks at the jobs (submitit rate-limits its sacct calls)
# sbatch's words when it cannot talk to slurmctld at all (as opposed to refusing the request)
_UNREACHABLE = re.compile(r"contact slurm controller|connect(ion)? (failure|refused)|timed out|Zero Bytes|"
                          r"Unable to establish", re.IGNORECASE)
_UNFINISHED = ("PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED")  # not started (again) yet: cancellable at no cost


def launch_and_wait(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                    cluster: str) -> list[JobReturn]:
    """Submit every job, wait for all, record each failure (faults.RECORDED) and return the completed jobs'
    returns: a failed one returned to Hydra's sweeper would be re-raised there as a traceback."""
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    jobs = _submit(launcher, job_overrides, initial_job_idx, cluster, sweep_dir)
    returns, fatal = _wait(jobs, [list(o) for o in job_overrides], cluster, sweep_dir)
    if fatal is not None:
        raise Stop(fatal)
    return returns


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


def _submit(launcher: Any, job_overrides, initial_job_idx: int, cluster: str, sweep_dir: Path) -> list:
    import submitit

    executor = _executor(launcher)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        sweep_dir.chmod(int(str(launcher.config.hydra.sweep.mode), 8))
    params = [(list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
              for idx, overrides in enumerate(job_overrides, start=initial_job_idx)]
    folder = submitit.core.utils.JobPaths.get_first_id_independent_folder(launcher.params["submitit_folder"])
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        # submitit prints sbatch's error output itself before raising it; it is told once, below
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(launcher, *zip(*params))
    except (submitit.core.utils.FailedJobError, OSError) as error:
        _remove_unsubmitted(sweep_dir, folder, before)
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        message = lines[-1] if lines else type(error).__name__
        if _UNREACHABLE.search(str(error)):
            raise Stop(Fault(f"cannot reach the {cluster} controller: {message}", rerun=None),
                       summarise=False) from None
        raise Stop(Fault(f"{cluster} refused the sweep: {message}", rerun=None), summarise=False) from None
    log.info("submitted %d cells to %s, sweep dir %s", len(jobs), cluster, sweep_dir)
    for (overrides, _, idx, _, _), job in zip(params, jobs):
        log.info("\t#%d (job %s): %s", idx, job.job_id, " ".join(filter_overrides(overrides)))
    return jobs


def _remove_unsubmitted(sweep_dir: Path, folder: Path, before: set[Path]) -> None:
    """Nothing was submitted: remove what this command wrote for the submission (the whole sweep dir if it made it:
    Hydra's multirun.yaml, the lock, the job pickles), so no half-made sweep is left to mistake for a real one."""
    if str(sweep_dir) in CREATED:
        shutil.rmtree(sweep_dir, ignore_errors=True)
        return
    for path in set(folder.iterdir()) - before if folder.is_dir() else ():
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _wait(jobs: list, overrides: list[list[str]], cluster: str, sweep_dir: Path) -> tuple[list[JobReturn],
                                                                                         Fault | None]:
    """Wait for every job, in the order they end; returns the completed jobs' returns and the first fatal fault."""
    pending = dict(enumerate(jobs))
    returns: list[JobReturn] = []
    fatal, stopped, pause = None, set(), _POLL_S[0]
    while pending:
        for index, job in list(pending.items()):
            if not job.done():
                continue
            del pending[index]
            if index in stopped:
                record(overrides[index], Fault(f"not started: the sweep stopped ({fatal.line})"))
                continue
            returned, fault = _outcome(job, cluster, sweep_dir)
            if returned is not None:
                returns.append(returned)
                continue
            record(overrides[index], fault)
            log.error("job %s (#%d) failed: %s", job.job_id, index, fault.line)
            if fault.fatal and fatal is None:
                fatal = fault
                stopped = {i for i, j in pending.items() if j.state.split()[0] in _UNFINISHED}
                for i in stopped:
                    pending[i].cancel(check=False)
        if pending:
            time.sleep(pause)
            pause = min(pause * 1.5, _POLL_S[1])
    return returns, fatal


def _outcome(job, cluster: str, sweep_dir: Path) -> tuple[JobReturn | None, Fault | None]:
    """A finished job's return, or the fault that ended it."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    if not job.paths.result_pickle.exists():
        state = job.state
        if state.split() and state.split()[0] not in ("COMPLETED", "FINISHED", "DONE", "UNKNOWN"):
            return None, ended_by_scheduler(state, cluster)  # no result will come: do not wait submitit's 15 s
    try:
        returned = job.results()[0]
    except UncompletedJobError:
        return None, ended_by_scheduler(job.state, cluster)
    except FailedJobError as error:  # the job failed outside the cell: only the traceback's text came back
        return None, from_traceback_text(str(error), out_dir=sweep_dir)
    if returned.status == JobStatus.FAILED:
        return None, describe(returned._return_value, out_dir=sweep_dir)
    return returned, None
