"""Check a command line before anything runs: override syntax, config choices, skills and every knob of every
job in the grid; the first problem becomes one line naming the bad value and the valid choices."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ntkeval.build import CONF_DIR, build_cell, build_logger, make
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


def check_job(cfg, make_once):
    """Build every light object of one job (not the model weights) so a bad value fails now; return its Cell."""
    cell = build_cell(cfg, out_dir=Path("."), make=make_once)
    cell.learner.validate(cell.dataset, cell.train_skill)
    cell.scorer.validate(cell.learner)
    build_logger(cfg)
    return cell


class _MakeOnce:
    """Instantiate each distinct config node once across the grid: a data set generates its questions once."""

    def __init__(self):
        self.made: dict[str, object] = {}

    def __call__(self, node):
        key = OmegaConf.to_yaml(node, resolve=True)
        if key not in self.made:
            self.made[key] = make(node)
        return self.made[key]


def check_writable(path: str | Path, what: str) -> None:
    """The directory, or the nearest existing folder it would be created in, accepts files: checked before hours
    of work would fail to save. Nothing is created."""
    folder = Path(path).expanduser().absolute()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".ntkeval-write-check"):
            pass
    except OSError as error:
        raise UserError(f"{what} {str(folder)!r} is not writable ({existing}: {error.strerror}); set {what} to a "
                        f"writable directory") from None


class _Composer:
    """Compose a grid fast: Hydra composes once per combination of config-group choices, and each job's plain
    `key=value` overrides are applied to a copy with OmegaConf.update(merge=True), as Hydra itself applies them.
    Anything else (`+key`, `~key`, a failing update) gets a full compose, so errors read as Hydra's."""

    def __init__(self):
        self.parser = OverridesParser.create()
        self.bases: dict[tuple[str, ...], object] = {}

    def __call__(self, job: list[str]):
        """The job's config without the hydra node (what the job itself receives)."""
        parsed = self.parser.parse_overrides(list(job))
        groups = tuple(sorted(o.input_line for o in parsed if _is_group(o)))
        values = [o for o in parsed if not _is_group(o) and not o.key_or_group.startswith("hydra.")]
        if any(o.type != OverrideType.CHANGE or o.package is not None for o in values):
            return _without_hydra(_compose(list(job)))
        if groups not in self.bases:
            # composed with this job's values, so a key that does not exist fails here, in Hydra's words
            self.bases[groups] = _without_hydra(_compose(list(job)))
            return self.bases[groups]
        cfg = copy.deepcopy(self.bases[groups])
        try:
            for o in values:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        except (OmegaConfBaseException, ValueError):
            return _without_hydra(_compose(list(job)))
        return cfg


def _without_hydra(cfg):
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def _is_group(override) -> bool:
    key = override.key_or_group
    return "." not in key and (CONF_DIR / key).is_dir()


def check_grid(jobs: list[list[str]]) -> tuple[list, list[str]]:
    """Compose and build every distinct job; return the cells and every problem found (not just the first)."""
    cells, problems, seen = [], [], set()
    compose_job, make_once = _Composer(), _MakeOnce()
    try:
        first = _compose(list(jobs[0]))  # the same dirs for every job, unless a job overrides them
        check_writable(first.cache_dir, "cache_dir")
        check_writable(Path(str(first.hydra.sweep.dir)).parent, "the output directory")
    except UserError as error:
        problems.append(str(error))
    for job in jobs:
        if tuple(sorted(job)) in seen:
            continue
        seen.add(tuple(sorted(job)))
        try:
            cells.append(check_job(compose_job(job), make_once))
        except UserError as error:
            if str(error) not in problems:
                problems.append(str(error))
    return cells, problems


def check_command_line(argv: list[str]) -> int:
    """Validate every job the command line would launch, listing all problems in one UserError; with dry_run=true
    print the grid's work after de-duplication and exit. Returns how many jobs would run."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.config_name:
        return 0  # Hydra's own informational modes: nothing runs
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
            jobs = job_overrides(args.overrides, args.multirun)
            cells, problems = check_grid(jobs)
            dry_run = bool(_compose(list(jobs[0])).get("dry_run", False))
    finally:
        GlobalHydra.instance().clear()
    if len(problems) == 1:
        raise UserError(problems[0])
    if problems:
        raise UserError(f"{len(problems)} problems in the grid, nothing was run:\n  " + "\n  ".join(problems))
    if dry_run:
        from ntkeval.plan import plan_grid

        for cell in cells:
            print(f"cell: {cell.model.name} {cell.learner.name} {cell.dataset.name} train={cell.train_skill} "
                  f"tests={len(cell.test_skills)} seed={cell.seed}")
        print("\n".join(plan_grid(cells).lines()))
        raise SystemExit(0)
    return len(jobs)


def compose_cell(overrides: list[str], out_dir: Path):
    """The checked Cell of one job given as command-line overrides (for scripts that study one cell)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
        (job,) = job_overrides(list(overrides), multirun=False)
        cfg = _without_hydra(_compose(list(job)))
    cell = build_cell(cfg, out_dir=out_dir)
    cell.learner.validate(cell.dataset, cell.train_skill)
    cell.scorer.validate(cell.learner)
    return cell
