"""Check a command line before anything runs: override syntax, config choices, skills and every knob of every
job in the grid; the first problem becomes one line naming the bad value and the valid choices."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ntkeval.build import CONF_DIR, build_logger, make, resolve_skills
from ntkeval.errors import UserError, choices_error


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/<group>/ (the conf tree is the registry)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _check_group_choices(overrides) -> None:
    for override in overrides:
        key = override.key_or_group
        if "." in key or override.is_delete() or not (CONF_DIR / key).is_dir():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else \
            [override.get_value_element_as_str()]
        options = group_options(key)
        for value in values:
            if value not in options and value != "null":
                raise choices_error(key.replace("/", " "), value, options)


def _compose(overrides: list[str]):
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        text = " ".join(str(error).split())  # Hydra's messages span lines; the user gets one
        if text.startswith("Could not override"):
            keys = ", ".join(k for k in _top_level_keys())
            text += f"; valid top-level keys: {keys}"
        raise UserError(text) from None


def _top_level_keys() -> list[str]:
    return sorted(compose(config_name="config").keys())


def job_overrides(argv_overrides: list[str], multirun: bool) -> list[list[str]]:
    """Expand the command line into one override list per job, as Hydra's basic sweeper will."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(argv_overrides)
    except OverrideParseException as error:
        raise UserError(f"malformed override: {' '.join(str(error).split())}") from None
    _check_group_choices(parsed)
    base = _compose([o.input_line for o in parsed if not o.is_sweep_override()])
    multirun = multirun or str(base.hydra.mode).endswith("MULTIRUN")
    if not multirun:
        if any(o.is_sweep_override() for o in parsed):
            sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
            raise UserError(f"{' '.join(sweeps)} sweeps several values; add -m (multirun) to run them all")
        return [argv_overrides]
    params = base.hydra.sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + argv_overrides
    full = parser.parse_overrides(lines)
    _check_group_choices(full)
    return BasicSweeper.split_arguments(full, max_batch_size=None)[0]


def check_job(cfg) -> None:
    """Build every light object of one job (not the model weights) so a bad value fails now."""
    dataset = make(cfg.dataset)
    train_skill, _ = resolve_skills(dataset, cfg.pair)
    make(cfg.learner).validate(dataset, train_skill)
    make(cfg.scorer)
    make(cfg.prompt)
    make(cfg.model)
    build_logger(cfg)


def check_command_line(argv: list[str]) -> int:
    """Validate every job the command line would launch; return how many. Raises UserError on the first problem."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.config_name:
        return 0  # Hydra's own informational modes: nothing runs
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
        jobs = job_overrides(args.overrides, args.multirun)
        seen: set[tuple[str, ...]] = set()
        for job in jobs:
            if tuple(sorted(job)) in seen:
                continue
            seen.add(tuple(sorted(job)))
            check_job(_compose(list(job)))
    GlobalHydra.instance().clear()
    return len(jobs)
