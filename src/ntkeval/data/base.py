"""What a data set is: the Example record every data set produces and the DataSet interface the cell, the learners
and the scorers use (arith, khanskill and jsonl implement it; a new data set is one module and one conf/dataset YAML).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Example:
    id: str        # stable and unique within a data set, e.g. "add/question/test/7"
    skill: str     # the skill it exercises, e.g. "add/question"
    question: str  # the surface text shown to the model, e.g. "What is 41+55?"
    answer: str    # the canonical answer as the model should write it, e.g. "96"


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
