"""What a cell may send to an experiment tracker, and the tracker that does nothing (so cell code never asks whether
W&B is on). The W&B implementation is ntkeval.tracking.wandb_tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """What a cell may send to an experiment tracker."""

    run_dir: Path | None  # where the tracker keeps this run on disk, if anywhere

    def log(self, metrics: dict, step: int | None = None) -> None: ...
    def summary(self, values: dict) -> None: ...
    def table(self, key: str, columns: list[str], rows: list[list]) -> None: ...
    def image(self, key: str, path: str | Path) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...
    def discard(self) -> None: ...  # finish as failed and delete the run's local files (cut short by a full disk)


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

    def finish(self, exit_code: int = 0) -> None:
        pass

    def discard(self) -> None:
        pass


class NoLogger:
    """The factory for `logger=none`."""

    def start(self, **_run_settings: Any) -> NullTracker:  # run_id, name, group, ...: nothing to keep
        return NullTracker()
