"""The parts every KhanSkill domain module shares: the skill and problem records, and how numbers are written.

A skill is a seeded generator: `generate(rng)` draws the numbers of one problem, computes the answer from those
numbers (never from the text) and writes the question. The numbers travel with the question as a `Problem`, so
tests can recompute every answer by a second formula and check the text shows the numbers it was built from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from ntkeval.data.khanskill.number_text import decimal_text, shown
from ntkeval.data.khanskill.work import Work

NAMES = ("Mia", "Liam", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Ken", "Amara", "Jonas", "Priya",
         "Diego", "Hana", "Sam")
THINGS = ("stickers", "marbles", "apples", "cards", "pencils", "shells", "coins", "books", "beads", "stamps")

Value = int | Fraction | Decimal | str | tuple  # tuple: a list of numbers shown together, e.g. a data set


@dataclass(frozen=True)
class Problem:
    """One generated question, with the numbers it shows (by name) and its canonical answer."""
    values: dict[str, Value]  # the answer is a function of these alone; names starting "_" are not shown
    question: str
    answer: str
    key: str                  # the underlying problem (no wording): a split of a skill holds each key once
    work: Work | None = field(default=None, compare=False)  # its worked solution, from the same computation


Generator = Callable[[random.Random], Problem | None]  # None: this draw is unusable, draw again


@dataclass(frozen=True)
class Skill:
    domain: str
    name: str
    title: str                # what a learner would call it, e.g. "Add fractions with unlike denominators"
    level: int                # school grade at which it is usually taught (US grades 1..9)
    kind: str                 # answer kind of ntkeval.data.answer_kinds, e.g. "fraction"
    generate: Generator
    choices: tuple[str, ...] = ()  # every possible answer, for "text" skills (yes/no, <, >, =)

    @property
    def id(self) -> str:
        return f"{self.domain}/{self.name}"


@dataclass
class SkillBank:
    """The skills of one domain module in the order they are declared (that order is the kernel's)."""
    skills: list[Skill] = field(default_factory=list)

    def skill(self, domain: str, name: str, title: str, level: int, kind: str, choices: tuple[str, ...] = ()
              ) -> Callable[[Generator], Generator]:
        """A decorator that adds the decorated generator to the bank as one skill."""
        def register(generate: Generator) -> Generator:
            self.skills.append(Skill(domain, name, title, level, kind, generate, choices))
            return generate
        return register


def _key_text(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_key_text(v) for v in value) + "]"
    return shown(value) if not isinstance(value, str) else value


def problem(question: str, answer: str, key: str | None = None, work: Work | None = None, **values: Value) -> Problem:
    """A Problem whose key is its values (sorted by name) unless the skill knows a coarser identity; `work` is the
    worked solution its generator computed on the way to the answer."""
    if key is None:
        key = ";".join(f"{name}={_key_text(v)}" for name, v in sorted(values.items()))
    return Problem(values=values, question=question, answer=answer, key=key, work=work)


def fraction_text(value: Fraction | int) -> str:
    """The canonical fraction answer: lowest terms, improper when over 1, a whole number when exact."""
    return shown(Fraction(value))


def mixed_text(value: Fraction) -> str:
    """A mixed number such as 2 1/3 (or a plain fraction below 1, or a whole number)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    sign = "-" if value < 0 else ""
    if rest == 0:
        return f"{sign}{whole}"
    part = f"{rest}/{value.denominator}"
    return f"{sign}{whole} {part}" if whole else f"{sign}{part}"





def money(value: Fraction | Decimal | int) -> str:
    return decimal_text(value, places=2)


def linear_text(coefficient: int, constant: int, var: str = "x", spaced: bool = False) -> str:
    """ax+b written as a student would: 3x+12, x-4, -x, 5, 2x (spaced: 3x + 12, as inside a question)."""
    if coefficient == 0:
        return str(constant)
    term = {1: var, -1: f"-{var}"}.get(coefficient, f"{coefficient}{var}")
    plus, minus = (" + ", " - ") if spaced else ("+", "-")
    if constant == 0:
        return term
    return f"{term}{plus}{constant}" if constant > 0 else f"{term}{minus}{-constant}"


def nonzero(rng: random.Random, low: int, high: int) -> int:
    """A random integer in [low, high] other than 0."""
    while (value := rng.randint(low, high)) == 0:
        pass
    return value


def terminating(value: Fraction) -> bool:
    """Whether a fraction has a finite decimal form (its denominator has no prime factor but 2 and 5)."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1
