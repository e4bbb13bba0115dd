"""The `ntkeval` command: Hydra composes the config, preflight checks the whole grid, then each job runs one cell.

Run: `ntkeval` (one cell), `ntkeval -m learner=icl-skill,tune-skill pair.train=add/question,mul/question` (a sweep),
`ntkeval experiment=quickstart` (the embedded demo grid). Hydra stays at the edge: this module (the runtime),
build.py (instantiate), preflight.py (compose the grid), callbacks.py, and sweep_grid.py (reading a sweep's Hydra
files for the report); the cell, learners, scoring, data and cache take plain arguments.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ntkeval.build import CONF_DIR, build_cell, build_logger
from ntkeval.callbacks import SWEEP_DIRS
from ntkeval.errors import UserError

log = logging.getLogger("ntkeval")

if not OmegaConf.has_resolver("slug"):
    # Skill names hold "/", which must not create nested job directories.
    OmegaConf.register_new_resolver("slug", lambda value: re.sub(r"[^A-Za-z0-9_.-]+", "-", str(value)))


def run(cfg: DictConfig) -> dict:
    """One Hydra job = one cell. A failure is recorded in result.json and re-raised so launchers see it."""
    from ntkeval.cell import failed_result, run_cell

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    cell = build_cell(cfg, out_dir)
    group = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else "single-runs"
    finished = previous_result(out_dir, cell.cell_id())
    if finished is not None:
        log.info("cell %s already done in %s: nothing recomputed", cell.cell_id(), out_dir)
        return finished
    tracker = build_logger(cfg).start(run_id=cell.cell_id(), name=f"{cell.model.name}|{cell.learner.name}|"
                                      f"{cell.train_skill}|seed{cell.seed}", group=group,
                                      job_type=cell.learner.name, config={**cell.config, "identity": cell.identity()},
                                      dir=str(out_dir))
    log_file = out_dir / f"{hc.job.name}.log"
    try:
        result = run_cell(cell, tracker)
    except BaseException as error:
        failed_result(cell, error, log_file)
        tracker.finish(exit_code=1)
        raise
    tracker.finish(exit_code=0)
    return result


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
    """Console entry point: preflight the command line (one-line errors, nothing loaded), then hand over to Hydra."""
    from ntkeval.preflight import check_command_line

    try:
        check_command_line(sys.argv[1:])
    except UserError as error:
        print(f"ntkeval: error: {error}", file=sys.stderr)
        sys.exit(2)
    code = 0
    try:
        _hydra_entry()
    except SystemExit as exit_:  # Hydra exits 1 after reporting a failed job; the summary still follows
        code = exit_.code if isinstance(exit_.code, int) else 1
    for sweep_dir in SWEEP_DIRS:
        code = max(code, summarise_sweep(Path(sweep_dir)))
    sys.exit(code)


def summarise_sweep(sweep_dir: Path) -> int:
    """Print cells done and failed (first error line and log path) for a finished multirun; 1 if any failed."""
    from ntkeval.report import load_results
    from ntkeval.sweep_grid import find_problems, relaunch_command

    results = load_results(sweep_dir)
    problems = find_problems(sweep_dir, results, notes=[])
    done = sum(r.get("status") == "done" for r in results)
    print(f"\nsweep {sweep_dir}: {done} cells done, {len(problems)} failed or missing", file=sys.stderr)
    for problem in problems:
        print(f"  {problem.line()}", file=sys.stderr)
    command = relaunch_command(sweep_dir) if problems else None
    if command:
        print(f"  rerun only what did not finish (done cells are skipped, cached stages reused):\n  {command}",
              file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    main()
