"""Hydra callback run by the command before it launches anything: it locks a multirun's sweep dir for the command's
lifetime (a second command on the same dir refuses in one line naming the first) and remembers where the command
writes, so it can summarise the sweep at its end and name the place in a fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ntkeval.jobs import locks
from ntkeval.jobs.faults import Fault, Stop, describe

SWEEP_DIRS: list[str] = []         # sweep dirs started in this process, in order
RUN_DIRS: list[str] = []           # single runs' dirs started in this process
CREATED: set[str] = set()          # those of them this process created (safe to remove if nothing was launched)
DRIVER_LOCK = ".ntkeval-driver.lock"
_HELD: list[locks.HeldLock] = []   # kept referenced for the process's lifetime; the kernel releases them at exit


class RememberSweepDir(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        RUN_DIRS.append(str(config.hydra.run.dir))  # the job's dir too: Hydra caches ${now:} per config

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        created = not sweep_dir.exists()
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            _HELD.append(locks.hold(sweep_dir / DRIVER_LOCK))
        except locks.Busy as busy:
            # Two commands in one sweep dir would run every cell twice and interleave their logs.
            raise Stop(Fault(f"sweep dir {sweep_dir} is in use by another ntkeval: {busy}", rerun=None),
                       summarise=False) from None
        except OSError as error:  # raised as Stop: Hydra would only warn about an exception from a callback
            raise Stop(describe(error, out_dir=sweep_dir), summarise=False) from None
        if created:
            CREATED.add(str(sweep_dir))
        SWEEP_DIRS.append(str(sweep_dir))
