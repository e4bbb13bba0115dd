"""Packing a sweep's cells into jobs (`hydra.launcher.pack=row`): cells that share a model and a train skill run in
one job, in turn, on one loaded model; this module groups them and orders them, and runs a packed job's cells."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ntkeval.cache import stable_hash

PACKS = ("none", "row")  # hydra.launcher.pack: one job per cell, or one job per model and train skill


def row_of(cfg: DictConfig) -> str:
    """The packing row of a job's composed config: its model (the whole model node, resolved), device and train
    skill. Cells of one row load the same weights, so one job can run them all on one loaded model."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    train = cfg.pair.train
    train = list(train) if OmegaConf.is_list(train) else str(train)
    return stable_hash({"model": model, "device": str(cfg.device), "train": train}, length=12)


def rows(keys: list[str]) -> list[list[int]]:
    """Job indices grouped by row, in order of each row's first job (jobs keep their order within a row)."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return list(groups.values())
