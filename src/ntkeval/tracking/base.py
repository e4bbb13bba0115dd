"""What a cell may send to an experiment tracker, and the tracker that does nothing (so cell code never asks whether
W&B is on). The W&B implementation is ntkeval.tracking.wandb_tracker."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# Less free space than this on the file system of a run's files counts as a full disk (a run's log tail is at most a
# 32 KiB block; its table and summary files are small): a run that could not be completed there was cut short by it.
LOW_SPACE_BYTES = 1 << 20


@runtime_checkable
class Tracker(Protocol):
    """What a cell may send to an experiment tracker."""

    run_dir: Path | None  # where the tracker keeps this run on disk, if anywhere

    def log(self, metrics: dict, step: int | None = None) -> None: ...
    def summary(self, values: dict) -> None: ...
    def table(self, key: str, columns: list[str], rows: list[list]) -> None: ...
    def image(self, key: str, path: str | Path) -> None: ...
    def finish(self, exit_code: int = 0) -> bool: ...  # whether the run on disk is complete (true if none is kept)
    def discard(self) -> None: ...  # finish as failed and delete the run's local files (cut short by a full disk)


@runtime_checkable
class Logger(Protocol):
    """What conf/logger/*.yaml builds: starts one tracker run per cell, and says whether a cell's run is whole."""

    def start(self, *, run_id: str, name: str, group: str, job_type: str, config: dict, dir: str) -> Tracker: ...
    def has_complete_run(self, *, run_id: str, dir: str) -> bool: ...  # false: a rerun of a done cell rebuilds it


class NullTracker:
    """Accepts every Tracker call and does nothing, so cell code never asks whether W&B is on."""

    run_dir: Path | None = None

    def log(self, metrics: dict, step: int | None = None) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        pass

    def image(self, key: str, path: str | Path) -> None:
        pass

    def finish(self, exit_code: int = 0) -> bool:
        return True  # nothing on disk to be incomplete

    def discard(self) -> None:
        pass


class NoLogger:
    """The factory for `logger=none`."""

    def start(self, **_run_settings: Any) -> NullTracker:  # run_id, name, group, ...: nothing to keep
        return NullTracker()

    def has_complete_run(self, **_run: Any) -> bool:  # nothing is mirrored, so nothing is ever missing
        return True


def no_room_left(path: str | Path) -> bool:
    """Whether the file system holding `path` (or its nearest existing parent) is all but full for this user."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < LOW_SPACE_BYTES
    except OSError:
        return False
