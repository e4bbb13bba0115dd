"""What a data set is: the Example record every data set produces and the DataSet interface the cell, the learners
and the scorers use (arith, khanskill and jsonl implement it; a new data set is one module and one conf/dataset YAML).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ntkeval.errors import UserError


@dataclass(frozen=True)
class Example:
    id: str        # stable and unique within a data set, e.g. "add/question/test/7"
    skill: str     # the skill it exercises, e.g. "add/question"
    question: str  # the surface text shown to the model, e.g. "What is 41+55?"
    answer: str    # the canonical answer as the model should write it, e.g. "96"


@dataclass(frozen=True)
class SkillGroups:
    """How skills group along named axes, and which axis the deep-versus-surface analysis compares with which.

    The deep axis groups skills that need the same understanding (arith's operation, KhanSkill's domain); the
    surface axis groups skills that only look alike (arith's format); a data set may have no surface axis (then
    same-deep pairs are compared with all other pairs). Other axes (KhanSkill's level) are recorded for readers.
    Result files hold it as JSON (to_json), so the report never needs to know which data set made them.
    """
    axes: tuple[str, ...]                  # axis names, deep first, e.g. ("operation", "format")
    deep: str                              # one of axes
    surface: str | None                    # one of axes, or None
    of_skill: Mapping[str, Mapping[str, str]]  # skill -> axis -> group: {"add/word": {"operation": "add", ...}}

    def __post_init__(self):
        if self.deep not in self.axes or (self.surface is not None and self.surface not in self.axes):
            raise ValueError(f"deep={self.deep!r} and surface={self.surface!r} must be among axes {self.axes}")

    def labels(self, axis: str, skills: Iterable[str]) -> list[str]:
        """The group of each skill on one axis (KeyError for a skill these groups do not cover)."""
        return [self.of_skill[skill][axis] for skill in skills]

    def only(self, skills: Iterable[str]) -> SkillGroups:
        """The same groups restricted to `skills` (what a cell records: its own skills)."""
        return SkillGroups(self.axes, self.deep, self.surface, {s: self.of_skill[s] for s in dict.fromkeys(skills)})

    def merged(self, other: SkillGroups) -> SkillGroups:
        """Both sets of skills (the cells of one kernel each record theirs); the axes must agree."""
        if (self.axes, self.deep, self.surface) != (other.axes, other.deep, other.surface):
            raise ValueError(f"skill groups disagree: {self.axes} (deep {self.deep}, surface {self.surface}) vs "
                             f"{other.axes} (deep {other.deep}, surface {other.surface})")
        return SkillGroups(self.axes, self.deep, self.surface, {**self.of_skill, **other.of_skill})

    def to_json(self) -> dict:
        return {"axes": list(self.axes), "deep": self.deep, "surface": self.surface,
                "skills": {skill: dict(groups) for skill, groups in self.of_skill.items()}}

    @classmethod
    def from_json(cls, data: Mapping) -> SkillGroups:
        return cls(tuple(data["axes"]), data["deep"], data.get("surface"),
                   {skill: {axis: str(group) for axis, group in groups.items()}
                    for skill, groups in data["skills"].items()})


def checked_groups(dataset: DataSet, skills: Iterable[str]) -> SkillGroups:
    """The data set's skill groups, or a one-line UserError when it has none covering `skills` (a data set written
    before data sets described their groups): found by the preflight, before any model loads."""
    describe = getattr(dataset, "skill_groups", None)
    groups = describe() if callable(describe) else None
    if not isinstance(groups, SkillGroups):
        raise UserError(f"data set {getattr(dataset, 'name', type(dataset).__name__)!r} does not describe its skill "
                        "groups: give it skill_groups() returning ntkeval.data.base.SkillGroups (its deep axis, "
                        "and its surface axis if any)")
    missing = [s for s in skills if s not in groups.of_skill]
    if missing:
        raise UserError(f"data set {dataset.name!r}: skill_groups() has no groups for skill {missing[0]!r}")
    return groups


def groups_by_axis(skills: Iterable[str], axes: Mapping[str, Callable[[str], object]]) -> dict[str, dict[str, str]]:
    """skill -> axis -> group, from one function per axis (skill -> its group on that axis)."""
    return {skill: {axis: str(group_of(skill)) for axis, group_of in axes.items()} for skill in skills}


@runtime_checkable
class DataSet(Protocol):
    name: str  # how results call it ("arith"); never branched on: the data set describes itself

    def skills(self) -> list[str]: ...  # every skill, in the data set's own order (kernels are drawn in it)

    def resolve(self, spec: str | Iterable[str]) -> list[str]: ...  # "all", a group, a skill or a list -> skills

    def train(self, skill: str) -> list[Example]: ...  # demonstrations and tuning texts

    def test(self, skill: str) -> list[Example]: ...  # the questions a kernel entry averages over

    def answer_kind(self, example: Example) -> str: ...  # a kind of ntkeval.data.answer_kinds (integer, fraction, ...)

    def is_correct(self, example: Example, given: str) -> bool: ...  # a read answer equivalent to the canonical one

    def random_answer(self, example: Example, rng: random.Random) -> str: ...  # a wrong answer of the same form

    def identity(self) -> dict: ...  # everything that determines its questions and answers (cache keys)

    def skill_groups(self) -> SkillGroups: ...  # every skill's groups: the deep axis (what is learned), the surface
    # axis (how it looks) if the data set has one, and any other; the cell records them, the report reads them


@runtime_checkable
class ReasoningDataSet(DataSet, Protocol):
    """A data set that can write worked solutions (ntkeval.formats.base.Solution) of its own problems, for the
    reasoning formats, their controls and the scorers that read reasoning. Every method answers from the data set's
    structure (expression trees, generator formulas, record fields), never from a model."""

    def solution(self, example: Example): ...  # -> Solution: steps in order, answer, program (where it can)

    def wrong_solution(self, example: Example, rng: random.Random): ...  # -> Solution of the same shape, random
    # numbers in every step, consistent with a random answer (the tune-base control of reasoning formats)

    def format_problem(self, format_name: str, skills: Iterable[str]) -> str | None: ...  # None, or one line on why
    # the data set cannot write `format_name` for some of `skills` (naming them): found by the preflight

    def backward_question(self, example: Example, candidate: str) -> tuple[str, str] | None: ...  # FOBAR: the
    # question with one of its numbers masked and `candidate` given as the answer, and the masked number; None: none

    def check_steps(self, example: Example, steps: tuple[str, ...]) -> bool | None: ...  # every written step right
    # (process supervision with an exact checker); None: this data set cannot check this example's steps


AUGMENTATIONS = ("rephrase", "backward", "answers")  # what tune-augment can ask of a data set (MetaMath, FOBAR, AugGSM8K)
EVOLUTIONS = ("depth",)  # how tune-rl can make training questions harder (Evol-Instruct's in-depth evolving)


@dataclass(frozen=True)
class Augmented:
    """One training item a data set made from one of its train examples: a new question (or the same one with
    another worked solution), its worked solution, and a solution of the same shape with random numbers in every
    step (the tune-base-style control's text). Solutions are ntkeval.formats.base.Solution records."""
    example: Example  # the question as trained on; its answer is exact (is_correct and answer_kind work on it)
    solution: object  # Solution: the correct worked solution
    wrong: object     # Solution: same shape, random numbers, a wrong answer of the same form
    kind: str         # "rephrase", "backward", "answers" or "evolve"
    source: str       # id of the train example it was made from


@runtime_checkable
class AugmentingDataSet(ReasoningDataSet, Protocol):
    """A data set that can make more training data from its own train examples, exactly, from its generators."""

    def augmentation_problem(self, kind: str, skills: Iterable[str]) -> str | None: ...  # None, or one line naming
    # the kind (AUGMENTATIONS or EVOLUTIONS) and the skill it cannot make for: found by the preflight

    def augment(self, example: Example, kind: str, n: int, rng: random.Random) -> list[Augmented]: ...  # up to n
    # items of `kind` from one train example: rephrase = the same problem in the other surface formats of its
    # operation (the same numbers and answer); backward = FOBAR questions (one number masked, the answer given);
    # answers = distinct worked solutions of the same question (another valid order of the steps, another method)

    def evolved(self, example: Example, depth: int, rng: random.Random) -> Augmented: ...  # a harder problem of
    # the same skill and surface (depth 1: larger numbers; 2: also one more operation), kind "evolve"
