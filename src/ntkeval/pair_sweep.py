"""Under -m, a pair.train that names several skills (`all`, a group such as `add` or `fractions`, or a list such as
`[add/question,word]`) becomes one job per skill, in the data set's order, where the job stood in Hydra's grid.

    ntkeval -m learner=icl-skill,tune-skill pair.train=all     # 2 x 24 cells: the same jobs as listing the skills

The ntkeval sweeper (hydra_plugins.ntkeval_sweeper, selected in conf/config.yaml) does it at launch; the preflight
does the same with the same function, so its checks and dry_run see exactly the jobs that will run. A job whose
pair.train is already one skill is left as it is, so its overrides read exactly as with Hydra's basic sweeper.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ntkeval.errors import UserError

KEY = "pair.train"
SWEEPER = "hydra_plugins.ntkeval_sweeper.NtkevalSweeper"  # conf/config.yaml selects it as hydra/sweeper=ntkeval
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./+-]*")  # written unquoted by Hydra's grammar and read back as this string


def expands(hydra_node: DictConfig) -> bool:
    """Whether the command's sweeper expands pair.train (the hydra node of its composed config)."""
    return str(OmegaConf.select(hydra_node, "sweeper._target_", default="")) == SWEEPER


def skill_override(skill: str) -> str:
    """`pair.train=<skill>` as Hydra reads it back: plain names unquoted (as people write them), others quoted."""
    if _PLAIN.fullmatch(skill) and skill not in ("true", "false", "null"):
        return f"{KEY}={skill}"
    return f"{KEY}='" + skill.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _train_index(job: list[str]) -> int | None:
    """Where the job sets pair.train (the last setting wins in Hydra), or None when the config alone does."""
    parsed = OverridesParser.create().parse_overrides(list(job))
    found = [i for i, o in enumerate(parsed) if o.key_or_group == KEY and not o.is_delete()]
    return found[-1] if found else None


def expand_jobs(jobs: list[list[str]], train_skills: Callable[[list[str]], list[str]]) -> list[list[str]]:
    """Each job in grid order, or in its place one job per skill its pair.train names (`train_skills(job)`: the
    skills, in the data set's order); the job's own pair.train override is replaced, else one is appended."""
    out: list[list[str]] = []
    for job in jobs:
        skills = train_skills(job)
        at = _train_index(job)
        if len(skills) == 1 and at is not None and job[at] == skill_override(skills[0]):
            out.append(list(job))
            continue
        for skill in skills:
            expanded = list(job)
            if at is None:
                expanded.append(skill_override(skill))
            else:
                expanded[at] = skill_override(skill)
            out.append(expanded)
    return out


class TrainSkills:
    """The skills a job's pair.train names: `compose(job)` gives its config, `make(node)` builds its data set
    (once per distinct data set node: generators and files are read once for the whole grid)."""

    def __init__(self, compose: Callable[[list[str]], DictConfig], make: Callable[[DictConfig], object]):
        self.compose, self.make = compose, make
        self.datasets: dict[str, object] = {}

    def __call__(self, job: list[str]) -> list[str]:
        cfg = self.compose(list(job))
        key = OmegaConf.to_yaml(cfg.dataset, resolve=True)
        if key not in self.datasets:
            self.datasets[key] = self.make(cfg.dataset)
        value = OmegaConf.select(cfg, KEY)
        value = list(value) if OmegaConf.is_list(value) else value
        try:
            return self.datasets[key].resolve(value)
        except UserError as error:
            raise UserError(f"{KEY}: {error}") from None


def grid_jobs(parser, params: dict | None, grids: dict | None, command_line: list[str]) -> list[list[str]]:
    """The jobs of a multirun, one override list each: Hydra's basic sweep of `params` then the command line, or,
    when the sweeper names `grids` (hydra.sweeper.grids: {name: {key: values}}), the concatenation, in the order
    written, of one such sweep per grid, each over `params`, then the grid's own values, then the command line (the
    command line wins, as it does over params). So one experiment can hold grids that do not form one product:
    in-context and tuned learners with their own scorers, or cells with another test data set."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    base = [f"{k}={v}" for k, v in (params or {}).items()]
    if not grids:
        return BasicSweeper.split_arguments(parser.parse_overrides(base + list(command_line)), None)[0]
    jobs: list[list[str]] = []
    for name, values in grids.items():
        if not isinstance(values, Mapping) or not values:
            raise UserError(f"hydra.sweeper.grids.{name} is invalid; expected a non-empty mapping of key: values, "
                            "e.g. {learner: 'icl-skill,tune-skill'}")
        lines = base + [f"{k}={v}" for k, v in values.items()] + list(command_line)
        jobs += BasicSweeper.split_arguments(parser.parse_overrides(lines), None)[0]
    return jobs
