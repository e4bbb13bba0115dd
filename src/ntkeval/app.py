"""The `ntkeval` command: Hydra composes the config, preflight checks the whole grid, then each job runs one cell.

Run: `ntkeval` (one cell), `ntkeval -m learner=icl-skill,tune-skill pair.train=add/question,mul/question` (a sweep),
`ntkeval experiment=quickstart` (the embedded demo grid). This is the only module that touches Hydra's runtime;
library code takes plain arguments.
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
    tracker = build_logger(cfg).start(run_id=cell.cell_id(), name=f"{cell.model.name}|{cell.learner.name}|"
                                      f"{cell.train_skill}", group=group, job_type=cell.learner.name,
                                      config=cell.config, dir=str(out_dir))
    log_file = out_dir / f"{hc.job.name}.log"
    try:
        result = run_cell(cell, tracker)
    except BaseException as error:
        failed_result(cell, error, log_file)
        tracker.finish(exit_code=1)
        raise
    tracker.finish(exit_code=0)
    return result


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
    _hydra_entry()


if __name__ == "__main__":
    main()
