"""KhanSkill: school-math skills in the style of Khan Academy exercises, each a seeded generator with a verified answer.

    from ntkeval.data.khanskill import KhanSkillDataset
    ds = KhanSkillDataset(seed=0)
    ds.test("fractions/add-unlike-denominators")[0]   # Example(id="fractions/add-unlike-denominators/test/0", ...)
    ds.resolve("fractions")                           # every skill of a domain
    ds.skill_info("fractions/add-unlike-denominators").answer_kind   # "fraction"

A stable hash of the numbers each question shows (not the seed, the skill, their order or the wording) puts it in
the train or the test bucket, so no test problem is ever a train problem of any skill, whatever the seed: twin skills
(greatest common factor and its word problem, 120 ÷ 3 and a car that drives 120 miles in 3 hours), a + b and b + a,
and -6 × 7 and 6 × (-7) always fall on one side.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ntkeval.data.answer_kinds import equivalent, wrong_answer
from ntkeval.data.base import Example, SkillGroups, groups_by_axis
from ntkeval.data.khanskill import (
    algebra,
    decimals,
    factors,
    fractions,
    geometry,
    measurement,
    place,
    powers,
    ratios,
    solutions,
    statistics,
    whole,
)
from ntkeval.data.khanskill.core import Problem, Skill
from ntkeval.data.selection import select_skills
from ntkeval.errors import UserError, choices_error
from ntkeval.formats.base import Solution

VERSION = 2       # bump whenever a change alters the generated questions; it is part of identity()
TEST_BUCKETS = 2  # 1 in TEST_BUCKETS number sets is reserved for test: small problem spaces need half
DOMAINS = (       # the order of kernel rows and columns: roughly the order a curriculum meets them
    "whole-numbers", "place-value", "time-money", "negative-numbers", "decimals", "fractions", "factors-multiples",
    "ratios-rates", "percents", "exponents", "order-of-operations", "expressions", "linear-equations", "sequences",
    "geometry", "angles", "volume", "unit-conversion", "statistics", "probability", "coordinate-plane")
_BANKS = (whole, place, decimals, fractions, factors, ratios, powers, algebra, geometry, measurement, statistics)
SKILLS: tuple[Skill, ...] = tuple(sorted((s for m in _BANKS for s in m.bank.skills),
                                         key=lambda s: DOMAINS.index(s.domain)))  # stable: declared order within
BY_ID = {s.id: s for s in SKILLS}
SKILL_IDS = tuple(BY_ID)


@dataclass(frozen=True)
class SkillInfo:
    id: str                        # "domain/name", e.g. "fractions/add-unlike-denominators"
    title: str                     # e.g. "Add fractions with unlike denominators"
    domain: str                    # e.g. "fractions"
    level: int                     # the school grade where it is usually taught
    answer_kind: str               # how answers are compared: a kind of ntkeval.data.answer_kinds
    choices: tuple[str, ...] = ()  # every possible answer of a "text" skill (yes/no, <, >, =)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 12,345 is one number; "3, 4, 5" is a list


def _numbers(text: str) -> list[Decimal]:
    return [Decimal(token) for token in _NUMBER.findall(_THOUSANDS.sub("", text))]


def split_key(question: str, answer: str) -> str:
    """What decides a problem's split: the numbers its question shows, unsigned and sorted, and nothing else.

    No skill, order, sign or wording, so the key is at least as coarse as "the same problem" read as the same numbers as
    written, in any order or surface, with the same answer. A question that shows no digits (a number written in
    words) is known by the numbers of its answer."""
    numbers = sorted(_numbers(question) or _numbers(answer))
    return ",".join(format(n.normalize(), "f") for n in numbers)  # 0.50 and 0.5, 05 and 5 are one number


def split_of(key: str) -> str:
    """'test' or 'train' for a split key, from a seed- and skill-independent hash (never Python's hash())."""
    digest = hashlib.sha256(f"khanskill-split:{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_BUCKETS == 0 else "train"


class KhanSkillDataset:
    """Seeded, cached generator of the KhanSkill bank; the same arguments give the same questions in any process."""

    name = "khanskill"

    def __init__(self, seed: int = 0, n_train: int = 20, n_test: int = 20):
        for what, value in (("n_train", n_train), ("n_test", n_test)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"khanskill: {what} must be an integer >= 0, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"khanskill: seed must be an integer, got {seed!r}")
        self.seed, self.n_train, self.n_test = seed, n_train, n_test
        self._cache: dict[tuple[str, str], tuple[tuple[Example, Problem], ...]] = {}

    def skills(self) -> list[str]:
        return list(SKILL_IDS)

    def domains(self) -> list[str]:
        return list(DOMAINS)

    def skill_info(self, skill: str) -> SkillInfo:
        spec = self._skill(skill)
        return SkillInfo(spec.id, spec.title, spec.domain, spec.level, spec.kind, spec.choices)

    def skill_groups(self) -> SkillGroups:
        """Domain (deep: the mathematics a skill needs) and level (the school grade; recorded, not contrasted); the
        questions of a skill share no surface form that others lack, so there is no surface axis."""
        return SkillGroups(("domain", "level"), deep="domain", surface=None, of_skill=groups_by_axis(
            SKILL_IDS, {"domain": lambda s: BY_ID[s].domain, "level": lambda s: BY_ID[s].level}))

    def resolve(self, spec: str | Iterable[str]) -> list[str]:
        """Skills named by 'all', a domain, a skill id, or any collection of these; canonical order."""
        groups = {d: [s for s in SKILL_IDS if s.startswith(f"{d}/")] for d in DOMAINS}
        return select_skills(spec, list(SKILL_IDS), groups)

    def train(self, skill: str) -> list[Example]:
        return [example for example, _ in self._generated(skill, "train")]

    def test(self, skill: str) -> list[Example]:
        return [example for example, _ in self._generated(skill, "test")]

    def problem(self, example: Example) -> Problem:
        """The numbers and key behind an example of this data set (for checks and analysis)."""
        skill, split, index = (example.id.rsplit("/", 2) + ["", ""])[:3]
        if split not in ("train", "test") or not index.isdigit() or skill not in BY_ID:
            raise UserError(f"khanskill: {example.id!r} is not an example id of this data set")
        pairs = self._generated(skill, split)
        if not int(index) < len(pairs) or pairs[int(index)][0] != example:
            raise UserError(f"khanskill: {example.id!r} is not an example of this data set")
        return pairs[int(index)][1]

    def answer_kind(self, example: Example) -> str:
        return self._skill(example.skill).kind

    def is_correct(self, example: Example, given: str) -> bool:
        """Whether a free-form answer is mathematically equivalent to the example's, as its skill's kind allows."""
        return equivalent(given, example.answer, self._skill(example.skill).kind)

    def random_answer(self, example: Example, rng: random.Random) -> str:
        """A wrong answer of the same kind and shape (same digit counts; another choice for yes/no-style skills)."""
        spec = self._skill(example.skill)
        try:
            return wrong_answer(example.answer, spec.kind, rng, spec.choices)
        except ValueError as error:
            raise UserError(f"khanskill: {example.id!r}: {error}") from None

    # ReasoningDataSet: worked solutions come from the generator's own computation (Problem.work); see solutions.py
    def solution(self, example: Example) -> Solution:
        return solutions.solution_of(self.problem(example), example.answer)

    def wrong_solution(self, example: Example, rng: random.Random) -> Solution:
        """Same steps and program shape, random numbers in every step, ending in a random answer of the same kind."""
        return solutions.wrong_solution_of(self.solution(example), self.random_answer(example, rng), rng)

    def format_problem(self, format_name: str, skills: Iterable[str]) -> str | None:
        skills = [self._skill(skill).id for skill in skills]
        return solutions.format_problem(format_name, skills, {s: self._sample_solution(s) for s in skills})

    def backward_question(self, example: Example, candidate: str) -> tuple[str, str] | None:
        return solutions.backward_question(example, self.problem(example), self._skill(example.skill), candidate)

    def check_steps(self, example: Example, steps: tuple[str, ...]) -> bool | None:
        """Each written step "expression = value" exactly true and the last one's value the answer (None where the
        skill's steps are not arithmetic: naming, comparing, classifying)."""
        return solutions.check_steps(self.solution(example), self._skill(example.skill), tuple(steps),
                                     lambda given: self.is_correct(example, given))

    def augmentation_problem(self, kind: str, skills: Iterable[str]) -> str | None:
        """khanskill makes no augmentations: each generator writes a problem once, in one wording, with one worked
        solution, and a backward question would need a worked solution of its own that no generator writes."""
        return (f"data set 'khanskill' cannot make {kind} (its generators write each problem once, in one wording, "
                "with one worked solution)")

    def _sample_solution(self, skill: str) -> Solution:
        """One solution of the skill from a private draw (what a skill can write does not depend on the seed)."""
        spec, rng = self._skill(skill), random.Random(f"khanskill-sample:{skill}")
        while (drawn := spec.generate(rng)) is None:
            pass
        return solutions.solution_of(drawn, drawn.answer)

    def identity(self) -> dict:
        return {"name": self.name, "seed": self.seed, "n_train": self.n_train, "n_test": self.n_test,
                "version": VERSION}

    def _skill(self, skill: str) -> Skill:
        if skill not in BY_ID:
            raise choices_error("skill", skill, SKILL_IDS)
        return BY_ID[skill]

    def _generated(self, skill: str, split: str) -> tuple[tuple[Example, Problem], ...]:
        spec = self._skill(skill)
        if (skill, split) not in self._cache:
            self._cache[skill, split] = self._generate(spec, split)
        return self._cache[skill, split]

    def _generate(self, spec: Skill, split: str) -> tuple[tuple[Example, Problem], ...]:
        """n distinct problems of the split's bucket, each with its text and its independently computed answer."""
        wanted = self.n_train if split == "train" else self.n_test
        rng = random.Random(f"khanskill:{VERSION}:{self.seed}:{spec.id}:{split}")  # str seeds hash with sha512
        seen: set[str] = set()  # problem keys, and split keys with answers: -8 + (-4) and -4 + (-8) are one problem
        out: list[tuple[Example, Problem]] = []
        for _ in range(200 * wanted + 2000):  # bounded, so a skill with too few problems fails instead of hanging
            if len(out) == wanted:
                break
            drawn = spec.generate(rng)
            if drawn is None:
                continue
            key = split_key(drawn.question, drawn.answer)
            names = {f"problem:{drawn.key}", f"numbers:{key}={drawn.answer}"}
            if names & seen or split_of(key) != split:
                continue
            seen |= names
            out.append((Example(f"{spec.id}/{split}/{len(out)}", spec.id, drawn.question, drawn.answer), drawn))
        if len(out) < wanted:
            raise UserError(f"khanskill: only {len(out)} distinct {split} problems for {spec.id!r}; "
                            f"lower dataset.n_{split}")
        return tuple(out)
