"""Turn a composed config into the plain objects a cell takes: the one place that calls `hydra.utils.instantiate`."""

from __future__ import annotations

from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from ntkeval.cache import StageCache
from ntkeval.errors import UserError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the registry: one YAML per option (editable install)


def make(node):
    """Instantiate a config node; a UserError raised inside a constructor comes out as itself, not wrapped."""
    try:
        return instantiate(node)
    except MissingMandatoryValue as error:
        key = getattr(error, "full_key", None) or "a required value"
        raise UserError(f"missing required value {key}: set it on the command line, e.g. {key}=...") from None
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        target = node.get("_target_", "?") if hasattr(node, "get") else "?"
        detail = " ".join(str(error.__cause__ or error).split())
        raise UserError(f"invalid setting for {target}: {detail}") from error


def resolve_skills(dataset, pair: DictConfig, test_dataset=None) -> tuple[str, list[str]]:
    """The cell's one train skill and its test skills, checked against the data set (the test skills against
    `test_dataset` when pair.test_dataset names another)."""
    value = list(pair.train) if OmegaConf.is_list(pair.train) else pair.train
    try:
        train = dataset.resolve(value)
    except UserError as error:
        raise UserError(f"pair.train: {error}") from None
    if len(train) != 1:
        raise UserError(f"pair.train={pair.train!r} names {len(train)} skills; a cell trains on exactly one "
                        f"(add -m to run one cell per skill); valid choices: {', '.join(dataset.skills())}")
    test = pair.test
    test = list(test) if OmegaConf.is_list(test) else test
    try:
        return train[0], (test_dataset if test_dataset is not None else dataset).resolve(test)
    except UserError as error:
        where = f" (of pair.test_dataset, {test_dataset.name})" if test_dataset is not None else ""
        raise UserError(f"pair.test{where}: {error}") from None


def test_dataset_node(cfg: DictConfig):
    """The pair.test_dataset node (dataset@pair.test_dataset=<option>), or None when the test skills come from the
    train data set."""
    return OmegaConf.select(cfg, "pair.test_dataset", default=None)


def build_cell(cfg: DictConfig, out_dir: Path, make=make):
    """The Cell of a job's config; `make` instantiates each node (preflight passes one that reuses objects)."""
    from ntkeval.backends.huggingface.loading import resolve_device
    from ntkeval.cell import Cell

    dataset = make(cfg.dataset)
    node = test_dataset_node(cfg)
    test_dataset = make(node) if node is not None else None
    if test_dataset is not None and test_dataset.identity() == dataset.identity():
        test_dataset = None  # the train data set itself: the same cell, its keys and config_id as without one
    train_skill, test_skills = resolve_skills(dataset, cfg.pair, test_dataset)
    # a config without a format node (written before formats existed) gets the Cell's default, direct
    answer_format = {"format": make(cfg.format)} if cfg.get("format") is not None else {}
    return Cell(model=make(cfg.model), learner=make(cfg.learner), dataset=dataset, train_skill=train_skill,
                test_skills=test_skills, test_dataset=test_dataset, scorer=make(cfg.scorer), fmt=make(cfg.prompt), seed=int(cfg.seed),
                **answer_format,
                cache=StageCache(Path(cfg.cache_dir) / "stages", orphan_hours=cfg.cache_orphan_hours),
                out_dir=out_dir, device=resolve_device(cfg.device), config=OmegaConf.to_container(cfg, resolve=True))


def build_logger(cfg: DictConfig):
    return make(cfg.logger)
