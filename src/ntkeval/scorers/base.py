"""Scorers: how a cell turns its roles (the untouched model, the control, the learner) into one kernel entry per test
skill. Each offers the same small interface, so the cell never asks which kind it has:

  identity() -> dict                 what determines its numbers (part of the cell id)
  validate(learner)                  raises UserError before any model loads if it cannot serve this learner
  stages(roles) -> [Stage]           the cached stages it needs per test skill (the dry-run plan counts them)
  compare(view) -> (row, questions)  the kernel row of one test skill and its per-question rows

`view` is the cell's window on one test skill (ntkeval.cell.SkillView): its examples, the prompt format, the seed,
the data set, the roles, `record(stage, compute)` (the stage cache) and `open(role)` (a context giving
(language model, prompt prefix): ntkeval.backends.base.LanguageModel with the role's adaptation active).

  exact    p(correct) by teacher forcing the canonical answer; greedy accuracy alongside (ntkeval.scorers.exact)
  sampled  accuracy of N sampled completions per question; delta = difference of accuracies (ntkeval.scorers.sampled)
  ntk      importance-sampled delta from completions of the control, the learner, or both (ntkeval.scorers.ntk)
  majority self-consistency: exact maj@k of the sampled answers for several k (ntkeval.scorers.majority)
  verify   self-verification / FOBAR: candidates re-ranked by backward questions (ntkeval.scorers.verify)
  process  process supervision: completions whose every step the data set checks right (ntkeval.scorers.process)

The sampling scorers read completions in the cell's answer format (view.format; ntkeval.scorers.reading) and share
one cached samples stage per role (ntkeval.scorers.sample_stages). They also offer bind_format(format), which the cell
calls before identity() and stages() so both hold the stop strings really used, and verify and process offer
validate_data(dataset) (a data set without backward questions or step checks: one line before any model loads).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ntkeval.cache import stable_hash
from ntkeval.data.base import DataSet, Example
from ntkeval.formats.base import AnswerFormat
from ntkeval.prompts import PromptFormat


@dataclass(frozen=True)
class Role:
    """One model a cell scores with: the untouched model (learner None) or a learner's adaptation of it."""
    name: str                # "base", or the learner's name ("icl-standard", "tune-skill", ...)
    learner: Any = None      # the learner object; None for the untouched model
    key: Any = None          # learner.key(train_skill, seed): what determines the adaptation (None: none)

    @property
    def id(self) -> str:
        return stable_hash(self.key)


@dataclass(frozen=True)
class Roles:
    base: Role
    control: Role            # the base role itself when the learner has no control of its own
    learner: Role
    seed: int                # the cell's seed: it seeds sampled streams, and the base role's key does not hold it

    @property
    def has_control(self) -> bool:
        return self.control.learner is not None

    def distinct(self, *roles: Role) -> list[Role]:
        seen, out = set(), []
        for role in roles:
            if role.id not in seen:
                seen.add(role.id)
                out.append(role)
        return out


@dataclass(frozen=True)
class Stage:
    """One cached computation for one test skill: its kind, the role whose model it runs, and what else keys it."""
    kind: str
    role: Role
    parts: dict = field(default_factory=dict)


@runtime_checkable
class SkillView(Protocol):
    """The cell's window on one test skill (ntkeval.cell.SkillView implements it)."""
    test_skill: str
    examples: list[Example]
    dataset: DataSet
    fmt: PromptFormat
    format: AnswerFormat  # the cell's answer format: completions are read with format.read
    seed: int
    roles: Roles

    def record(self, stage: Stage, compute: Callable[[], Any]) -> Any: ...  # the stage cache: cached or computed once

    def open(self, role: Role) -> AbstractContextManager: ...  # (LanguageModel, prefix), the role's adaptation on


@runtime_checkable
class Scorer(Protocol):
    def identity(self) -> dict: ...  # what determines its numbers (part of the cell id); "name" names it

    def validate(self, learner: Any) -> None: ...  # UserError before any model loads if it cannot serve `learner`

    def stages(self, roles: Roles) -> list[Stage]: ...  # the cached stages per test skill (the dry-run plan)

    def compare(self, view: SkillView) -> tuple[dict, list[dict]]: ...  # (kernel row, per-question rows)
