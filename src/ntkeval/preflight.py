"""Check a command line before anything runs, cheapest checks first, and turn every problem into one line naming the
key, the bad value and what is expected.

  1. the text: override syntax, keys and values too long to be real, config-group choices, -m for a sweep or a
     launcher, keys that exist (Hydra composes every job)
  2. the schema (ntkeval.schema): type and range of every value of every job, devices and local paths on this
     machine, writable cache and output dirs; no torch, well under two seconds
  3. the data sets: skills each job names; under -m a pair.train naming several skills becomes one job per skill
     (ntkeval.pair_sweep, as the sweeper will), and the later stages and dry_run see those jobs
  4. the full build of every job without weights (imports torch, seconds): what only the classes know, e.g. more
     demonstrations than train questions, a scorer that needs a control, an answer format the data set cannot
     write for the skills the learner and its control need, format=pot without a usable program sandbox

A stage runs only when the ones before it found nothing, and reports every problem of the grid it finds.

Then, before anything runs, ntkeval.estimate.planning estimates each job's peak GPU memory from its model's
architecture when there is a limit to check (hydra.launcher.gpu_memory_gb, or the visible GPU for cells run in this
process) or dry_run=true prints it; a job that cannot fit even at its smallest batches refuses the grid in one line.
calibrate=true (with dry_run=true) times one cell per model here and estimates the grid's GPU-hours.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ntkeval.build import CONF_DIR, build_cell, build_logger, make, resolve_skills, test_dataset_node
from ntkeval.data.base import checked_groups
from ntkeval.errors import UserError, choices_error, shorten
from ntkeval.estimate.planning import RUNS_HERE, Launch, plan_jobs, planning_settings
from ntkeval.formats.checks import format_checks
from ntkeval.jobs.packing import remember_checked
from ntkeval.pair_sweep import TrainSkills, expand_jobs, expands, grid_jobs
from ntkeval.schema import check_config, host
from ntkeval.schema.command_line import check_lengths, group_options, search_dirs

TEST_DATASET = "pair.test_dataset"  # test skills from another data set (a config group placed under pair)


def _is_group(key: str) -> bool:
    try:
        return "." not in key and (CONF_DIR / key).is_dir()
    except (OSError, ValueError):  # a name the file system refuses is no group
        return False


def _check_group_choices(overrides) -> None:
    """Each config-group choice names an option: a YAML in conf/<group>/ or in a `hydra.searchpath` dir (a user's
    own learner, scorer, data set or model is one YAML there). Options in a pkg:// search path are Python packages
    this text check cannot list: Hydra's composition judges those."""
    searchpath = [o for o in overrides if o.key_or_group == "hydra.searchpath" and not o.is_delete()]
    entries = list(searchpath[-1].value()) if searchpath else []
    if any(str(e).startswith("pkg://") for e in entries):
        return
    extra = search_dirs(str(e) for e in entries)
    for override in overrides:
        key = override.key_or_group
        if override.is_delete() or not _is_group(key):
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else \
            [override.get_value_element_as_str()]
        options = group_options(key, CONF_DIR, extra)
        for value in values:
            if value not in options and value != "null":
                raise choices_error(key.replace("/", " "), value, options)


def _compose(overrides: list[str]):
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        text = " ".join(str(error).split())  # Hydra's messages span lines; the user gets one
        if text.startswith("Could not override '"):
            text = _unknown_key(text.split("'")[1], overrides)
        raise UserError(text) from None


def _unknown_key(key: str, overrides: list[str]) -> str:
    """Name the keys that do exist where the user reached for one that does not."""
    if key == TEST_DATASET:  # a data set is a config group: it is chosen as one, under the pair node
        options = ", ".join(group_options("dataset", CONF_DIR, []))
        return (f"{TEST_DATASET} is chosen as a config group: dataset@{TEST_DATASET}=<option> (e.g. "
                f"dataset@{TEST_DATASET}=khanskill, then {TEST_DATASET}.n_test=...); valid choices: {options}")
    others = [o for o in overrides if o.partition("=")[0].lstrip("+~") != key]
    try:
        cfg = compose(config_name="config", overrides=others, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException):
        cfg = compose(config_name="config", return_hydra_config=True)
    parts, depth, node = key.split("."), 0, cfg
    while depth < len(parts) - 1 and OmegaConf.is_dict(node) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    parent = ".".join(parts[:depth])
    if not OmegaConf.is_dict(node):
        return f"unknown key {shorten(key)}: {parent} holds a value, not keys; expected {parent}=<value>"
    valid = ", ".join(sorted(k for k in node if not k.startswith("_")))  # _target_ and kin are Hydra's
    missing = f" ({parent} has no key {parts[depth]!r})" if parent else ""
    return f"unknown key {shorten(key)}{missing}; valid keys{f' of {parent}' if parent else ''}: {valid}"


@dataclass
class Grid:
    """The jobs a command line launches (one override list each), whether they form a multirun, and the config of
    the command line without its sweeps (hydra node included: launcher, output dirs)."""
    jobs: list[list[str]]
    multirun: bool
    base: Any
    configs: list = field(default_factory=list)  # each checked job's config, in the order of its Cell


def job_overrides(argv_overrides: list[str], multirun: bool) -> Grid:
    """Expand the command line into one override list per job, as Hydra's basic sweeper will. Without -m (and a
    config that is no multirun) a sweep or a launcher is refused: Hydra would run one cell here and ignore both."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(argv_overrides)
    except OverrideParseException as error:
        raise UserError(f"malformed override: {' '.join(str(error).split())}") from None
    _check_group_choices(parsed)
    base = _compose([o.input_line for o in parsed if not o.is_sweep_override()])
    multirun = multirun or str(base.hydra.mode).endswith("MULTIRUN")
    if not multirun:
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        if sweeps:
            raise UserError(f"{' '.join(sweeps)} sweeps several values; add -m (multirun) to run them all")
        launcher = base.hydra.runtime.choices.get("hydra/launcher")
        if not str(base.hydra.launcher._target_).endswith("BasicLauncher"):
            raise UserError(f"hydra/launcher={launcher} launches multiruns only (without -m the cell would run "
                            f"here, in this process); expected -m: ntkeval -m {' '.join(argv_overrides)}")
        return Grid([argv_overrides], multirun=False, base=base)
    params = base.hydra.sweeper.get("params") or {}
    grids = base.hydra.sweeper.get("grids") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + argv_overrides
    for values in grids.values():
        lines += [f"{k}={v}" for k, v in (values or {}).items()]
    _check_group_choices(parser.parse_overrides(lines))
    return Grid(grid_jobs(parser, params, grids, argv_overrides), multirun=True, base=base)


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
        groups = tuple(sorted(o.input_line for o in parsed if _is_group(o.key_or_group)))
        values = [o for o in parsed if not _is_group(o.key_or_group) and not o.key_or_group.startswith("hydra.")]
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


class _MakeOnce:
    """Instantiate each distinct config node once across the grid: a data set generates its questions once."""

    def __init__(self):
        self.made: dict[str, object] = {}

    def __call__(self, node):
        key = OmegaConf.to_yaml(node, resolve=True)
        if key not in self.made:
            self.made[key] = make(node)
        return self.made[key]


class _Problems(list):
    """Problem lines in the order found, each once."""

    def add(self, problem: str) -> None:
        if problem not in self:
            self.append(problem)


def typed_problems(cfg) -> list[str]:
    """Stage 2 for one job: the schema's verdict on its config (the hydra node is Hydra's to check)."""
    cfg = _without_hydra(cfg) if "hydra" in cfg else cfg
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "a value"
        return [f"{key} cannot be resolved: {' '.join(str(error).split()[:40])}"]
    problems = check_config(resolved, {})
    if problems:  # again, with the unresolved values, to name `${tuning.lr}` as tuning.lr
        problems = check_config(resolved, OmegaConf.to_container(cfg, resolve=False))
    return problems


def machine_problems(base, configs: list, multirun: bool) -> list[str]:
    """Stage 2 for the grid: devices this machine lacks (when cells run here) and directories it cannot write."""
    problems = _Problems()
    if str(base.hydra.launcher._target_).endswith(RUNS_HERE):
        for device in sorted({str(cfg.device) for cfg in configs}):
            why = host.device_problem(device)
            if why:
                gpus = host.cuda_gpus().count
                cuda = f", cuda:0 .. cuda:{gpus - 1}" if gpus else ""
                problems.add(f"device={shorten(device)} is invalid here ({why}); expected auto, cpu{cuda}")
    for cache_dir in sorted({str(cfg.cache_dir) for cfg in configs}):
        why = host.writable_problem(cache_dir)
        if why:
            problems.add(f"cache_dir={shorten(cache_dir)} is not writable ({why}); expected a writable directory")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        out = str(OmegaConf.select(base, key, throw_on_missing=True))
    except OmegaConfBaseException as error:
        return [*problems, f"{key} cannot be resolved: {' '.join(str(error).split()[:40])}"]
    why = host.writable_problem(out) if out.strip() else "empty"
    if why:
        problems.add(f"{key}={shorten(out)} is not writable ({why}); expected a writable directory for the results")
    return problems


def check_job(cfg, make_once):
    """Stage 4 for one job: build every light object (not the model weights) so a bad value fails now; its Cell."""
    cell = build_cell(cfg, out_dir=Path("."), make=make_once)
    if cell.test_dataset is None:  # the cell records them in result.json
        checked_groups(cell.dataset, [cell.train_skill, *cell.test_skills])
    else:
        checked_groups(cell.dataset, [cell.train_skill])
        checked_groups(cell.test_dataset, cell.test_skills)
    cell.learner.validate(cell.dataset, cell.train_skill)
    cell.scorer.validate(cell.learner)
    format_checks(cell)
    build_logger(cfg)
    return cell


def _distinct(jobs: list[list[str]]) -> list[list[str]]:
    return list({tuple(sorted(job)): job for job in jobs}.values())


def _expanded(grid: Grid, compose_job, make_once, problems: _Problems) -> list:
    """Stage 3 under the ntkeval sweeper: grid.jobs with each pair.train that names several skills made one job per
    skill (what will launch), and the distinct jobs' configs; [] when a pair.train names an unknown skill."""
    expanded, train_skills = [], TrainSkills(compose_job, make_once)
    for job in grid.jobs:  # job by job, so every unknown skill of the grid is named
        try:
            expanded += expand_jobs([job], train_skills)
        except UserError as error:
            problems.add(str(error))
    if problems:
        return []
    grid.jobs = expanded
    return [compose_job(job) for job in _distinct(grid.jobs)]


def check_grid(grid: Grid) -> tuple[list, list[str]]:
    """Compose and check every distinct job, stage by stage; every problem of the first stage that finds any, or
    the jobs' Cells when none does."""
    problems, configs, compose_job = _Problems(), [], _Composer()
    for job in _distinct(grid.jobs):
        try:  # a single run is the command line itself, composed already
            configs.append(compose_job(job) if grid.multirun else _without_hydra(grid.base))
        except UserError as error:
            problems.add(str(error))
    for problem in [p for cfg in configs for p in typed_problems(cfg)]:
        problems.add(problem)
    if not problems:
        problems.extend(machine_problems(grid.base, configs, grid.multirun))
    make_once = _MakeOnce()
    if not problems and grid.multirun and expands(grid.base.hydra):
        configs = _expanded(grid, compose_job, make_once, problems)
    for cfg in configs if not problems else []:  # stage 3: cheap (no torch), so a misspelt skill fails fast
        try:
            node = test_dataset_node(cfg)
            resolve_skills(make_once(cfg.dataset), cfg.pair, make_once(node) if node is not None else None)
        except UserError as error:
            problems.add(str(error))
    cells = []
    for cfg in configs if not problems else []:
        try:
            cells.append(check_job(cfg, make_once))
        except UserError as error:
            problems.add(str(error))
    if not problems:
        grid.configs = configs
    return (cells, []) if not problems else ([], problems)


def check_command_line(argv: list[str]) -> int:
    """Validate every job the command line would launch, listing all problems in one UserError, and refuse a grid
    whose jobs cannot fit their GPU; with dry_run=true print the grid's work after de-duplication, each job's
    memory (and with calibrate=true its GPU-hours) and exit. Returns how many jobs would run."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.config_name:
        return 0  # Hydra's own informational modes: nothing runs
    check_lengths(args.overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
            grid = job_overrides(args.overrides, args.multirun)
            launch = launch_settings(grid.base)
            cells, problems = check_grid(grid)
    finally:
        GlobalHydra.instance().clear()
    if len(problems) == 1:
        raise UserError(problems[0])
    if problems:
        raise UserError(f"{len(problems)} problems in the grid, nothing was run:\n  " + "\n  ".join(problems))
    plan_jobs(launch, cells, grid.configs)
    if grid.multirun:  # the packing launcher plans with these instead of building every cell again
        remember_checked(_distinct(grid.jobs), cells, grid.configs)
    if launch.dry_run:
        raise SystemExit(0)
    return len(grid.jobs)


def launch_settings(base) -> Launch:
    """What planning needs of the command line's config, checked (ntkeval.estimate.planning.planning_settings)."""
    launcher = base.hydra.launcher
    launch = Launch(launcher=str(launcher._target_), pack=launcher.get("pack"),
                    gpu_memory_gb=launcher.get("gpu_memory_gb"), dry_run=base.get("dry_run") is True,
                    calibrate=base.get("calibrate") is True)
    planning_settings(launch)
    return launch


def compose_cell(overrides: list[str], out_dir: Path):
    """The checked Cell of one job given as command-line overrides (for scripts that study one cell)."""
    check_lengths(list(overrides))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
        (job,) = job_overrides(list(overrides), multirun=False).jobs
        cfg = _without_hydra(_compose(list(job)))
    problems = typed_problems(cfg)
    if problems:
        raise UserError("; ".join(problems))
    cell = build_cell(cfg, out_dir=out_dir)
    cell.learner.validate(cell.dataset, cell.train_skill)
    cell.scorer.validate(cell.learner)
    format_checks(cell)
    return cell
