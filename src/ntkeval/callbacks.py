"""Hydra callback that remembers where a multirun writes, so the command can summarise the sweep at its end."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SWEEP_DIRS: list[str] = []  # sweep dirs started in this process, in order


class RememberSweepDir(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        SWEEP_DIRS.append(str(config.hydra.sweep.dir))
