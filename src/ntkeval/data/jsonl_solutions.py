"""The worked solutions of a jsonl data set (ntkeval.data.base.ReasoningDataSet), from its records' optional
`rationale` (steps, one per line) and `program` (Python that prints the answer) fields.

    {"question": "What is 3/4 + 1/8?", "answer": "7/8", "skill": "fractions/add",
     "rationale": "3/4 = 6/8\n6/8 + 1/8 = 7/8", "program": "from fractions import Fraction\nprint(Fraction(3, 4) + Fraction(1, 8))"}

Free-text steps cannot be checked exactly (check_steps answers None); a wrong solution keeps every line and the
program's shape with each number replaced by a random one of as many digits, and the answer's own number by the
random answer (a program so changed still runs, but prints what its numbers give: the shape is the control).
"""

from __future__ import annotations

import random
import re

from ntkeval.formats.base import Solution, Step

SOLUTION_FIELDS = ("rationale", "program")
NEEDS = {"cot": ("rationale",), "work": ("rationale",), "pot": ("program",), "hybrid": ("rationale", "program")}
_NUMBER = re.compile(r"(?<![\w.])\d+")


def _random_numbers(text: str, answer: str, wrong: str, rng: random.Random) -> str:
    """Every whole number of `text` redrawn with as many digits; the answer's own number becomes the wrong one's."""
    def redraw(match: re.Match) -> str:
        digits = match.group()
        if digits == answer.lstrip("-"):
            return wrong.lstrip("-")
        return str(rng.randint(10 ** (len(digits) - 1) if len(digits) > 1 else 0, 10 ** len(digits) - 1))
    return _NUMBER.sub(redraw, text)


class JsonlSolutions:
    """The ReasoningDataSet methods of JsonlDataset; it provides _pairs(skill), random_answer and source."""

    def _record_of(self, example):
        for candidate, record in self._pairs(example.skill):
            if candidate.id == example.id:
                return record
        raise KeyError(example.id)

    def solution(self, example) -> Solution:
        record = self._record_of(example)
        steps = tuple(Step(line.strip(), "") for line in (record.rationale or "").splitlines() if line.strip())
        return Solution(steps, example.answer, record.program, computational=record.program is not None)

    def wrong_solution(self, example, rng: random.Random) -> Solution:
        right = self.solution(example)
        wrong = self.random_answer(example, rng)  # first, from the stream tune-base's direct answers come from
        steps = tuple(Step(_random_numbers(s.expression, example.answer, wrong, rng), "") for s in right.steps)
        program = _random_numbers(right.program, example.answer, wrong, rng) if right.program else None
        return Solution(steps, wrong, program, computational=right.computational)

    def format_problem(self, format_name: str, skills) -> str | None:
        """Which of `skills` lack the fields the format writes from (a skill needs them on every train question)."""
        needs = NEEDS.get(format_name, ("rationale",))  # a format of one's own writes steps
        lacking = [skill for skill in skills
                   if any(all(getattr(record, field) is None for field in needs)
                          for example, record in self._pairs(skill) if "/train/" in example.id)]
        if not lacking:
            return None
        shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        return (f"data set {self.source} has no {' or '.join(needs)} on some train questions of {shown}; add a "
                f"{' or '.join(repr(n) for n in needs)} field to their records, or use format=direct")

    def backward_question(self, example, candidate: str) -> tuple[str, str] | None:
        """FOBAR: the question's first number masked as X, `candidate` given as the answer (None: no number)."""
        match = _NUMBER.search(example.question)
        if match is None:
            return None
        text = example.question[:match.start()] + "X" + example.question[match.end():]
        return (f"{text} If we know the answer to the above question is {candidate}, what is the value of unknown "
                "variable X?", match.group())

    def augmentation_problem(self, kind: str, skills) -> str | None:
        """A file of records has no generator to rephrase, turn around or re-solve its questions exactly."""
        return (f"data set 'jsonl' cannot make {kind} (its questions are fixed records, with no generator to make "
                "more of them exactly)")

    def check_steps(self, example, steps: tuple[str, ...]) -> None:
        """Free-text steps have no exact checker."""
        return None
