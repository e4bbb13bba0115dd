"""The `ntkeval` command: Hydra composes the config, preflight checks the whole grid, then each job runs one cell.

Run: `ntkeval` (one cell), `ntkeval -m learner=icl-skill,tune-skill pair.train=add/question,mul/question` (a sweep),
`ntkeval experiment=quickstart` (the embedded demo grid). Hydra stays at the edge: this module (the runtime),
build.py (instantiate), preflight.py (compose the grid), callbacks.py, and sweep_grid.py (reading a sweep's Hydra
files for the report); the cell, learners, scoring, data and cache take plain arguments.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ntkeval.build import CONF_DIR, build_cell, build_logger
from ntkeval.errors import UserError
from ntkeval.jobs import locks
from ntkeval.jobs.callbacks import RUN_DIRS, SWEEP_DIRS
from ntkeval.jobs.faults import (
    RECORDED,
    CellFailed,
    Fault,
    LogWriteErrors,
    Stop,
    describe,
    log_traceback_to_files,
    record,
)
from ntkeval.tracking.base import Logger, Tracker, no_room_left

log = logging.getLogger("ntkeval")
CELL_LOCK = ".ntkeval-cell.lock"  # in the job dir, held while the cell runs

if not OmegaConf.has_resolver("slug"):
    # Skill names hold "/", which must not create nested job directories.
    OmegaConf.register_new_resolver("slug", lambda value: re.sub(r"[^A-Za-z0-9_.-]+", "-", str(value)))


def run(cfg: DictConfig) -> dict:
    """One Hydra job = one cell, under a lock on its job dir (a second copy of a running cell refuses).

    A failure is recorded in result.json and becomes one line (faults.py). Inside the `ntkeval` command itself
    (single runs, the default in-process launcher) the line is kept for the summary and the job returns, unless
    every later cell would meet the same fault (a full disk), which ends the sweep; in a process a launcher started
    (submitit local, Slurm) it is raised as CellFailed, which the job hands back to the command.
    """
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    log_writes = LogWriteErrors.install()
    try:
        with locks.hold(out_dir / CELL_LOCK):
            group = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else "single-runs"
            return run_locked(cfg, out_dir, log_file=out_dir / f"{hc.job.name}.log", group=group)
    except locks.Busy as busy:
        fault = Fault(f"this cell is already running: {busy}")  # a rerun after it ends finds its result
        error: BaseException = busy
    except Exception as raised:
        error = raised
        fault = describe(raised, config=_plain(cfg), out_dir=out_dir)
        if not fault.known and log_writes.fault() is not None:
            fault = log_writes.fault()  # e.g. W&B giving up on the full disk that also stopped the log
    if hc.mode == RunMode.MULTIRUN and not SWEEP_DIRS:  # a job process that a launcher started
        raise CellFailed(fault) from error
    record(list(hc.overrides.task), fault)
    if fault.fatal:
        raise Stop(fault) from None
    return {"status": "failed", "error": fault.line}


def run_locked(cfg: DictConfig, out_dir: Path, log_file: Path, group: str) -> dict:
    """The cell itself: skipped when this job dir already holds its result (only its tracker run is rebuilt from
    that result when missing or incomplete), else run and mirrored to the tracker (W&B group `group`)."""
    from ntkeval.cell import failed_result, mirror_from_disk, run_cell

    cell = build_cell(cfg, out_dir)
    logger = build_logger(cfg)
    finished = previous_result(out_dir, cell.cell_id())
    if finished is not None:
        log.info("cell %s already done in %s: nothing recomputed", cell.cell_id(), out_dir)
        if not logger.has_complete_run(run_id=cell.cell_id(), dir=str(out_dir)):
            log.info("cell %s: its W&B run is missing or incomplete; rebuilding it from result.json and "
                     "questions.jsonl", cell.cell_id())
            tracker = start_tracker(logger, cell, group)
            try:
                mirror_from_disk(cell, tracker, finished)
            except BaseException:
                tracker.discard()
                raise
            close_tracker(tracker, out_dir)
        return finished
    tracker = start_tracker(logger, cell, group)
    try:
        result = run_cell(cell, tracker)
    except BaseException as error:
        log_traceback_to_files(error)  # the console gets one line; the cell's log keeps where it came from
        try:
            failed_result(cell, error, log_file)
        except OSError:  # the disk that failed the cell cannot take its record either (the write is atomic)
            pass
        if describe(error, out_dir=out_dir).fatal:
            tracker.discard()  # its files may be cut short by the full disk; the rerun writes the run again
        else:
            tracker.finish(exit_code=1)
        raise
    close_tracker(tracker, out_dir)
    return result


def start_tracker(logger: Logger, cell, group: str) -> Tracker:
    """The cell's tracker run: the same id, name, group and config whether the cell runs or is mirrored again."""
    return logger.start(run_id=cell.cell_id(), name=f"{cell.model.name}|{cell.learner.name}|{cell.train_skill}|"
                        f"seed{cell.seed}", group=group, job_type=cell.learner.name,
                        config={**cell.config, "identity": cell.identity()}, dir=str(cell.out_dir))


def close_tracker(tracker: Tracker, out_dir: Path) -> None:
    """Finish a done cell's tracker run. A run its writer could not complete is deleted, not left cut short (a rerun
    rebuilds it from result.json); when the disk filled, that is raised as the fault it is, which stops the sweep."""
    if tracker.finish(exit_code=0):
        return
    where = tracker.run_dir or out_dir
    full = no_room_left(where)  # before discard() frees the room the run took
    tracker.discard()
    if full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
    log.warning("the W&B run of this cell could not be completed and was deleted; the cell's results are on disk, "
                "and rerunning the cell rebuilds its run from them")


def _plain(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a config that does not resolve failed the cell already; its fault needs no settings
        return {}


def previous_result(out_dir: Path, cell_id: str) -> dict | None:
    """The result a relaunched job already wrote for this very cell, if it finished."""
    import json

    try:
        result = json.loads((out_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    same = result.get("status") == "done" and result.get("cell", {}).get("cell_id") == cell_id
    return result if same else None


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_entry(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    """Console entry point: preflight the command line (one-line errors, nothing loaded), then hand over to Hydra;
    faults end in one line each, with the sweep's summary and rerun command where rerunning can help."""
    from ntkeval.preflight import check_command_line

    try:
        check_command_line(sys.argv[1:])
    except UserError as error:
        print(f"ntkeval: error: {error}", file=sys.stderr)
        sys.exit(2)
    # Hydra prints an exception that escapes its job runner (say, a job dir it cannot write) as a traceback; with
    # this it reaches the handlers below instead (a user's own HYDRA_FULL_ERROR=0 keeps Hydra's way).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    code, stop = 0, None
    try:
        _hydra_entry()
    except SystemExit as exit_:  # Hydra exits 1 after reporting a failed job; the summary still follows
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Stop as raised:
        stop = raised
    except (HydraException, OmegaConfBaseException) as error:  # the config, read by Hydra: not a fault of a cell
        print(f"ntkeval: error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        # Only Hydra's own writes of a job's files get here (cells catch their errors), under the command's output dir.
        written = (SWEEP_DIRS or RUN_DIRS)[-1:]
        fault = describe(error, out_dir=Path(written[0]) if written else None)
        if not fault.known:
            raise  # a bug: its traceback is the useful report
        stop = Stop(fault)
    if stop is not None:
        stopped = "; no further cells were started" if stop.summarise and SWEEP_DIRS else ""
        print(f"ntkeval: error: {stop.fault.line}{stopped}", file=sys.stderr)
        code = max(code, 1)
        if not stop.summarise:
            sys.exit(code)
    for sweep_dir in SWEEP_DIRS:
        code = max(code, summarise_sweep(Path(sweep_dir)))
    if not SWEEP_DIRS and RECORDED and stop is None:  # a single run's failure
        for fault in RECORDED.values():
            print(f"ntkeval: error: {fault.line}", file=sys.stderr)
        code = max(code, 1)
    sys.exit(code)


def summarise_sweep(sweep_dir: Path) -> int:
    """Print cells done and failed for a finished multirun, each problem in one line (the fault this command saw,
    else what the files say), and the command that reruns what did not finish when rerunning can help; 1 if any
    failed."""
    from ntkeval.report.sweep_grid import find_problems, relaunch_command
    from ntkeval.report.sweep_report import load_results

    results = load_results(sweep_dir)
    problems = find_problems(sweep_dir, results, notes=[])
    done = sum(r.get("status") == "done" for r in results)
    print(f"\nsweep {sweep_dir}: {done} cells done, {len(problems)} failed or missing", file=sys.stderr)
    if done:
        print(f"  {lock_wait_line(results)}", file=sys.stderr)
    faults = [RECORDED.get(problem.key) for problem in problems]
    for problem, fault in zip(problems, faults):
        # an unexpected error is better told by its result.json: the cell, the error and the log with its traceback
        told = fault is not None and (fault.known or problem.kind != "failed")
        print(f"  {problem.line(fault.line if told else None)}", file=sys.stderr)
    helped = [fault for fault in faults if fault is None or fault.rerun is not None]
    extra = sorted({override for fault in helped if fault is not None for override in fault.rerun})
    command = relaunch_command(sweep_dir, extra) if helped else None
    if command:
        print(f"  rerun only what did not finish (done cells are skipped, cached stages reused):\n  {command}",
              file=sys.stderr)
    return 1 if problems else 0


def lock_wait_line(results: list[dict]) -> str:
    """How long the sweep's cells waited for stages other jobs were computing (result.json's cache.lock_wait_s): the
    time a GPU sat idle behind a lock; the longest waits are named."""
    waits = sorted(((float((r.get("cache") or {}).get("lock_wait_s") or 0.0), r) for r in results
                    if r.get("status") == "done"), key=lambda wait: -wait[0])
    total = sum(seconds for seconds, _ in waits)
    if total == 0:
        return "waiting on other jobs' locks: 0.0 s"
    named = ", ".join(f"{(r.get('cell') or {}).get('learner')}|{(r.get('cell') or {}).get('train_skill')} {seconds:.1f} s"
                      for seconds, r in waits[:3] if seconds > 0)
    return (f"waiting on other jobs' locks: {total:.1f} s in {sum(s > 0 for s, _ in waits)} cells (longest: {named}); "
            f"hydra.launcher.pack=row runs the cells that compute shared stages first")


if __name__ == "__main__":
    main()
