"""KhanSkill's side of the reasoning formats: worked solutions from each generator's own computation, wrong
solutions of the same shape for the tune-base control, exact step checks, and FOBAR backward questions.

    ds = KhanSkillDataset(); example = ds.train("fractions/add-unlike-denominators")[0]   # Calculate 3/7 + 7/10.
    ds.solution(example).steps   # lcm(7, 10) = 70, 3 * 10 + 7 * 7 = 79, 79 / 70 = 79/70 (as Step records)
    ds.check_steps(example, ("Common denominator: lcm(7, 10) = 70", "3 * 10 + 7 * 7 = 79", "79 / 70 = 79/70"))  # True

A wrong solution (the tune-base control) keeps every step's words and shape with random digits and ends in a random
answer of the skill's kind; its program has the same lines with those random numbers, so what it prints follows them
rather than the random answer. check_steps is None for skills whose answers are words or symbols (comparing, naming).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from fractions import Fraction

from ntkeval.data.base import Example
from ntkeval.data.khanskill.checking import same, split_step, step_is_true, value_of
from ntkeval.data.khanskill.core import Problem, Skill
from ntkeval.data.khanskill.work import AUTO, Work, build_program
from ntkeval.formats.base import Solution, Step

FORMAT_NEEDS = {"cot": "steps", "work": "steps", "pot": "program", "hybrid": "hybrid"}  # others need nothing
# Skills whose answer does not pin down a masked number of the question (rounding, remainders, factors, a
# distance either way, a median or mode), so a backward question would have no single answer.
NOT_INVERTIBLE = frozenset({
    "whole-numbers/division-remainder", "place-value/digit-value", "place-value/round-whole-numbers",
    "place-value/round-decimals", "factors-multiples/greatest-common-factor", "factors-multiples/least-common-multiple",
    "factors-multiples/count-factors", "factors-multiples/largest-prime-factor", "factors-multiples/gcf-word-problem",
    "factors-multiples/lcm-word-problem", "negative-numbers/number-line-distance", "coordinate-plane/grid-distance",
    "statistics/median", "statistics/mode", "statistics/range", "exponents/evaluate-powers"})
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:/\d+)?)(?![\w])")  # 12,345 3/4 0.5 12
_PART = re.compile(r"(?<![\d.])(\d+)(?![\d.])")  # a whole number, also inside 3/4, 3x or 2:10


def solution_of(problem: Problem, answer: str) -> Solution:
    """The worked solution the generator wrote beside the problem (program built from its steps unless given)."""
    work = problem.work or Work(())
    program = build_program(work.steps, answer) if work.program == AUTO else work.program
    return Solution(work.steps, answer, program, work.computational)


def format_problem(format_name: str, skills: Iterable[str], sample: dict[str, Solution]) -> str | None:
    """One line naming the skills that cannot write `format_name` (sample: one solution per skill), or None."""
    need = FORMAT_NEEDS.get(format_name)
    if need is None:
        return None

    def lacks(solution: Solution) -> bool:
        wants_program = need == "program" or (need == "hybrid" and solution.computational)
        return solution.program is None if wants_program else not solution.steps

    missing = [skill for skill in skills if lacks(sample[skill])]
    if not missing:
        return None
    what = {"steps": "worked steps", "program": "a program", "hybrid": "a program (or steps)"}[need]
    return (f"khanskill cannot write format {format_name!r} for {len(missing)} skill(s) without {what}: "
            f"{', '.join(missing)}")


_DIGITS = re.compile(r"\d+")
_PROGRAM_NUMBERS = re.compile(r"(?<![\w.:{])\d+(?:\.\d+)?")  # not step1, .2f or {whole}


def _scrambled(text: str, rng: random.Random, numbers: re.Pattern = _DIGITS) -> str:
    """Every digit of every number replaced at random, the first never 0 (same shape, no division by zero)."""
    def digits(match: re.Match) -> str:
        return "".join(c if not c.isdigit() else str(rng.randint(1 if i == 0 else 0, 9))
                       for i, c in enumerate(match.group(0)))
    return numbers.sub(digits, text)


def wrong_solution_of(right: Solution, wrong_answer: str, rng: random.Random) -> Solution:
    """The same steps with random numbers in every expression and value, ending in `wrong_answer`; its program is
    built the same way from those steps (so it has the same shape; what it prints follows its random numbers)."""
    steps = tuple(Step(_scrambled(s.expression, rng), _scrambled(s.value, rng), s.text) for s in right.steps)
    if steps:
        steps = steps[:-1] + (Step(steps[-1].expression, wrong_answer, steps[-1].text),)
    program = None
    if right.program is not None:
        program = build_program(steps, wrong_answer) or _scrambled(right.program, rng, _PROGRAM_NUMBERS)
    return Solution(steps, wrong_answer, program, right.computational)


def check_steps(right: Solution, skill: Skill, steps: tuple[str, ...], is_correct) -> bool | None:
    """Every written step true and the last one's value the answer; None where the skill's own steps are not
    arithmetic this checker can verify (naming a place, comparing, classifying)."""
    if skill.kind == "text" or not right.steps or not all(
            step_is_true(f"{s.expression} = {s.value}") for s in right.steps):
        return None
    if not steps or not all(step_is_true(written) for written in steps):
        return False
    last = split_step(steps[-1])
    return last is not None and (is_correct(last[1]) or same(value_of(last[1]), value_of(right.answer)))


def _inputs(problem: Problem) -> set[Fraction]:
    """The sizes of the numbers a problem was built from (signs stay in the question: -X masks the 5 of -5),
    including those inside its written expressions and equations."""
    numbers = set()
    for value in problem.values.values():
        for item in value if isinstance(value, tuple) else (value,):
            found = _NUMBER.findall(item) if isinstance(item, str) else [item]
            numbers |= {abs(Fraction(str(n).replace(",", ""))) for n in found}
    return numbers


def backward_question(example: Example, problem: Problem, skill: Skill, candidate: str) -> tuple[str, str] | None:
    """FOBAR: the question with its first input number masked by a letter and `candidate` given as the answer,
    and the masked number as written; None for conceptual skills, those whose answer does not fix the number, and
    questions that show no number (written in words)."""
    if skill.kind == "text" or skill.id in NOT_INVERTIBLE:
        return None
    inputs = _inputs(problem)
    tokens = sorted([*_NUMBER.finditer(example.question), *_PART.finditer(example.question)],
                    key=lambda m: (m.start(1), -len(m.group(1))))  # 42/49 before its parts 42 and 49
    for match in tokens:
        written = match.group(1)
        if Fraction(written.replace(",", "")) not in inputs:
            continue
        letter = next(x for x in "XYZKQW" if not re.search(rf"\b{x}\b", example.question, re.IGNORECASE))
        masked = example.question[:match.start(1)] + letter + example.question[match.end(1):]
        return (f"{masked} If we know the answer to this question is {candidate}, what is the value of the "
                f"unknown number {letter}?", written.replace(",", ""))
    return None
