"""KhanSkill's worked solutions (issue 11): every skill's steps, program, wrong solution, step checks and backward
questions agree with the answers its generator wrote, across seeds."""

from __future__ import annotations

import contextlib
import io
import random
import re

import pytest

from ntkeval.data.base import Example, ReasoningDataSet  # noqa: F401  (Example: the type examples() returns)
from ntkeval.data.khanskill import KhanSkillDataset
from ntkeval.data.khanskill.checking import step_is_true, value_of
from ntkeval.data.khanskill.dataset import SKILL_IDS
from ntkeval.data.khanskill.solutions import NOT_INVERTIBLE
from ntkeval.errors import UserError
from ntkeval.formats.base import Solution

CONCEPTUAL = {"place-value/place-of-digit", "negative-numbers/compare-integers", "decimals/compare-decimals",
              "fractions/compare-fractions", "factors-multiples/is-prime", "factors-multiples/divisibility",
              "angles/classify-angles", "coordinate-plane/quadrants", "expressions/write-expressions"}
NO_PROGRAM = {"expressions/write-expressions"}  # writing words as an expression computes nothing


def written(solution: Solution) -> tuple[str, ...]:
    return tuple(f"{step.expression} = {step.value}" for step in solution.steps)


def printed(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {})  # our own programs, built from our own steps
    return out.getvalue()


def altered(value: str) -> str:
    """The value with its last number changed by one (2:7 -> 2:8, x=6 -> x=7, 58π -> 59π)."""
    last = list(re.finditer(r"\d+", value))[-1]
    return value[:last.start()] + str(int(last.group()) + 1) + value[last.end():]


def examples(seed: int, n: int = 6) -> list[Example]:
    ds = KhanSkillDataset(seed=seed, n_train=n, n_test=n)
    return [e for skill in ds.skills() for e in ds.train(skill) + ds.test(skill)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_solution_agrees_with_its_answer(seed):
    ds = KhanSkillDataset(seed=seed, n_train=6, n_test=6)
    assert isinstance(ds, ReasoningDataSet)
    checked = 0
    for example in examples(seed):
        solution = ds.solution(example)
        assert solution.answer == example.answer and solution.steps, example
        assert solution.steps[-1].value == example.answer, (example, solution.steps)
        assert solution.computational == (example.skill not in CONCEPTUAL), example.skill
        if solution.program is not None:
            assert printed(solution.program) == example.answer + "\n", (example, solution.program)
        verdict = ds.check_steps(example, written(solution))
        text_answer = ds.skill_info(example.skill).answer_kind == "text"
        assert verdict is (None if text_answer else True), (example, written(solution))
        if verdict:
            checked += 1
            for index, step in enumerate(solution.steps):
                steps = list(written(solution))
                steps[index] = f"{step.expression} = {altered(step.value)}"
                assert ds.check_steps(example, tuple(steps)) is False, (example, steps)
    assert checked >= 0.9 * len(examples(seed))  # all but the conceptual skills are checked


def test_every_skill_has_steps_and_the_pot_problem_names_exactly_the_skills_without_a_program():
    ds = KhanSkillDataset(seed=0, n_train=4, n_test=4)
    without = [s for s in SKILL_IDS if any(ds.solution(e).program is None for e in ds.train(s) + ds.test(s))]
    with_some = [s for s in without if any(ds.solution(e).program for e in ds.train(s) + ds.test(s))]
    assert with_some == [] and without == sorted(NO_PROGRAM)  # a skill has a program for all its problems or none
    for name in ("direct", "cot", "work", "hybrid"):  # hybrid writes steps where the skill is not computational
        assert ds.format_problem(name, SKILL_IDS) is None
    line = ds.format_problem("pot", SKILL_IDS)
    assert "\n" not in line and "'pot'" in line and line.endswith("expressions/write-expressions")
    assert ds.format_problem("pot", [s for s in SKILL_IDS if s not in without]) is None
    with pytest.raises(UserError, match="unknown skill|valid"):
        ds.format_problem("pot", ["fractions/no-such-skill"])


def test_wrong_solutions_keep_the_shape_with_random_numbers_and_a_random_answer():
    ds = KhanSkillDataset(seed=0, n_train=3, n_test=3)
    for example in examples(0, 3):
        right = ds.solution(example)
        wrong = ds.wrong_solution(example, random.Random(example.id))
        assert wrong == ds.wrong_solution(example, random.Random(example.id))  # seeded
        assert wrong.answer == wrong.steps[-1].value == ds.random_answer(example, random.Random(example.id))
        assert not ds.is_correct(example, wrong.answer)
        assert len(wrong.steps) == len(right.steps) and (wrong.program is None) == (right.program is None)
        assert [s.text for s in wrong.steps] == [s.text for s in right.steps]
        for good, bad in zip(right.steps, wrong.steps, strict=True):
            assert re.sub(r"\d", "0", good.expression) == re.sub(r"\d", "0", bad.expression)  # same shape
        numbered = [(g, b) for g, b in zip(right.steps, wrong.steps, strict=True) if re.search(r"\d{2}", g.expression)]
        assert not numbered or any(g.expression != b.expression for g, b in numbered), example


def test_step_checker_is_exact_and_reads_labels():
    assert step_is_true("3/4 + 1/8 = 7/8") and step_is_true("2. 41 + 55 = 96") and step_is_true("Step 3: 96 / 4 = 24")
    assert step_is_true("Add them: 0.1 + 0.2 = 0.3")  # exact: no floating-point 0.30000000000000004
    assert not step_is_true("0.1 + 0.2 = 0.31") and not step_is_true("41 + 55 = 97") and not step_is_true("96")
    assert step_is_true("(16 // 8, 56 // 8) = 2:7") and step_is_true("(45 + 3) / 8 = x=6")
    assert step_is_true("2 * 29 * pi = 58π") and step_is_true("3 * x + 5 * x = 8x")
    assert not step_is_true("2 * 29 * pi = 57π") and not step_is_true("2 ** 10**9 = 1")  # bounded, not computed
    assert value_of("2 1/3") == value_of("7/3") and value_of("45%") == value_of("45")


def test_check_steps_on_hand_written_solutions():
    ds = KhanSkillDataset(seed=0, n_train=0, n_test=3)
    example = ds.test("fractions/add-unlike-denominators")[0]
    a, b = example.question.rstrip("?.").split()[-3::2]
    total = value_of(a) + value_of(b)
    assert ds.check_steps(example, (f"{a} + {b} = {total.numerator}/{total.denominator}",)) is True
    assert ds.check_steps(example, (f"{a} + {b} = {total.numerator + 1}/{total.denominator}",)) is False
    assert ds.check_steps(example, (f"{a} + {b} = {total.numerator}/{total.denominator}", "1 + 1 = 2")) is False
    assert ds.check_steps(example, ()) is False
    assert ds.check_steps(ds.test("angles/classify-angles")[0], ("1 + 1 = 2",)) is None


def test_backward_questions_mask_an_input_number_that_restores_the_question():
    ds = KhanSkillDataset(seed=0, n_train=0, n_test=4)
    covered = set()
    for skill in SKILL_IDS:
        for example in ds.test(skill):
            backward = ds.backward_question(example, "777")
            if ds.skill_info(skill).answer_kind == "text" or skill in NOT_INVERTIBLE:
                assert backward is None, skill
            if backward is None:
                continue
            covered.add(skill)
            question, masked = backward
            head, tail = question.split(" If we know the answer to this question is 777, what is the value of the "
                                        "unknown number ")
            letter = tail.rstrip("?")
            assert head.replace(letter, masked, 1) == example.question, (example, backward)
    assert len(covered) >= 95  # every invertible computational skill except those whose question shows no input


def test_a_backward_question_by_hand():
    ds = KhanSkillDataset(seed=0, n_train=0, n_test=1)
    example = ds.test("whole-numbers/subtract-within-1000")[0]
    first = re.search(r"\d+", example.question).group()
    question, masked = ds.backward_question(example, "5")
    assert masked == first and question.startswith(example.question.replace(first, "X", 1))
    assert question.endswith("If we know the answer to this question is 5, what is the value of the unknown number X?")
    assert ds.backward_question(ds.test("angles/classify-angles")[0], "acute") is None


def test_solutions_survive_the_formats_round_trip():
    """What the cot/work formats write of a solution, read back, passes check_steps with its words in place; the
    pot/hybrid program inside its fence prints the answer."""
    from ntkeval.formats.reasoning import CotFormat, HybridFormat, PotFormat, WorkFormat
    ds = KhanSkillDataset(seed=3, n_train=2, n_test=2)
    for example in examples(3, 2):
        solution, kind = ds.solution(example), ds.answer_kind(example)
        for fmt in (CotFormat(), WorkFormat()):
            reading = fmt.read(fmt.target(example, solution), kind)
            assert len(reading.steps) == len(solution.steps) and ds.is_correct(example, reading.answer), example
            assert ds.check_steps(example, reading.steps) is (None if kind == "text" else True), (example, reading)
        for fmt in (PotFormat(), HybridFormat()):
            if solution.program is None and (fmt.name == "pot" or solution.computational):
                continue
            reading = fmt.read(fmt.target(example, solution), kind)
            if reading.program is not None:
                assert printed(reading.program) == example.answer + "\n", example


def test_hand_computed_solutions():
    ds = KhanSkillDataset(seed=0, n_train=1, n_test=0)

    def steps_of(skill: str) -> tuple[str, list[tuple[str, str]], str | None]:
        example = ds.train(skill)[0]
        solution = ds.solution(example)
        return example.question, [(s.expression, s.value) for s in solution.steps], solution.program

    assert steps_of("fractions/add-unlike-denominators")[:2] == (
        "Calculate 3/7 + 7/10.", [("lcm(7, 10)", "70"), ("3 * 10 + 7 * 7", "79"), ("79 / 70", "79/70")])
    question, steps, program = steps_of("whole-numbers/multiply-two-digit")
    assert question == "What is 44 × 14?" and steps == [("44 * 10", "440"), ("44 * 4", "176"), ("440 + 176", "616")]
    assert program == "step1 = 44 * 10\nstep2 = 44 * 4\nstep3 = 440 + 176\nprint(step3)\n"
    question, steps, program = steps_of("linear-equations/two-step-equations")
    assert question == "Solve for x: 8x - 3 = 45." and steps == [("45 - (-3)", "48"), ("48 / 8", "x=6")]
    assert printed(program) == "x=6\n"
    assert steps_of("geometry/circle-area")[1:] == ([("30 ** 2", "900"), ("900 * pi", "900π")],
                                                   'radius = 30\nprint(f"{radius ** 2}π")\n')
    assert steps_of("order-of-operations/multi-step")[:2] == (
        "Evaluate [8 + (12 - 12)] × 6.", [("12 - 12", "0"), ("8 + 0", "8"), ("8 * 6", "48")])
