"""Where a data set's solutions meet a format: the written answer of a demonstration or tuning text, the written
wrong answer of the tune-base control, and which skills a learner needs solutions of (checked at preflight).

For the direct format these are today's texts exactly: the example's answer, and the data set's random_answer drawn
from the same generator, so no direct cell needs a data set that writes solutions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from ntkeval.data.base import Example
from ntkeval.errors import UserError

REASONING_SCORERS = "sampled, ntk, majority, verify, process"  # the scorers that read a written solution


def written_answer(answer_format, dataset, example: Example) -> str:
    """What follows the prompt in a demonstration or a tuning text: the answer, or the worked solution."""
    if not answer_format.reasoning:
        return example.answer
    return answer_format.target(example, dataset.solution(example))


def wrong_written_answer(answer_format, dataset, example: Example, rng: random.Random) -> str:
    """The tune-base control's text: the same form with wrong content (direct: a random answer of the same form;
    reasoning formats: a solution of the same shape whose every step uses random numbers, ending in a random answer)."""
    if not answer_format.reasoning:
        return dataset.random_answer(example, rng)
    return answer_format.target(example, dataset.wrong_solution(example, rng))


def format_problem(answer_format, dataset, skills: Iterable[str]) -> str | None:
    """One line when `dataset` cannot write `answer_format` for some of `skills` (None: it can, or the format needs
    no solutions)."""
    if not answer_format.reasoning:
        return None
    name = getattr(dataset, "name", type(dataset).__name__)
    ask = getattr(dataset, "format_problem", None)
    if not callable(ask) or not callable(getattr(dataset, "solution", None)):
        return (f"format={answer_format.name} needs worked solutions, and data set {name!r} writes none (it has no "
                "solution/format_problem methods: ntkeval.data.base.ReasoningDataSet); expected format=direct")
    problem = ask(answer_format.name, list(skills))
    return f"format={answer_format.name}: {problem}" if problem else None


def check_format(answer_format, dataset, skills: Iterable[str]) -> None:
    problem = format_problem(answer_format, dataset, skills)
    if problem:
        raise UserError(problem)
