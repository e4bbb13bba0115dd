"""Data sets write worked solutions from their own structure: arith from expression trees (steps in evaluation order,
a program, wrong solutions of the same shape, FOBAR backward questions, an exact step checker); jsonl from optional
rationale and program fields. Values below are computed by hand."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re

import pytest

from ntkeval.data.arith import ALL_FORMATS, ArithDataset, evaluate
from ntkeval.data.arith_solutions import (
    inverted,
    program_of,
    random_tree,
    steps_of,
    tree_of,
    value,
)
from ntkeval.data.base import Example
from ntkeval.errors import UserError
from ntkeval.formats.base import Step


def run(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {})  # our own generated programs, not a model's: no sandbox needed here
    return out.getvalue().strip()


def test_steps_and_program_follow_the_tree_in_evaluation_order():
    tree = tree_of("(12+7)*3")
    assert steps_of(tree) == (Step("12 + 7", "19"), Step("19 * 3", "57"))
    assert program_of(tree) == "x1 = 12 + 7\nx2 = x1 * 3\nprint(x2)"
    tree = tree_of("((3+5)*4-2)/5")  # 8, 32, 30, 6
    assert [s.value for s in steps_of(tree)] == ["8", "32", "30", "6"]
    assert run(program_of(tree)) == "6"


@pytest.mark.parametrize("expression,masked,x", [("41+55", 0, 41), ("96/4", 1, 4), ("(12+7)*3", 1, 7),
                                                 ("40-(3*4)", 2, 4), ("((3+5)*4-2)/5", 3, 2)])
def test_inverting_a_tree_solves_for_the_masked_number(expression, masked, x):
    assert value(inverted(tree_of(expression), masked, evaluate(expression))) == x


def test_a_random_tree_keeps_the_shape_and_reaches_its_target():
    rng = random.Random(3)
    for expression in ("41+55", "96/4", "(12+7)*3", "((3+5)*4-2)/5", "(3+5)*(7-2)"):
        tree = tree_of(expression)
        for target in (0, 7, 96, 1234):
            wrong = random_tree(tree, target, rng)
            assert value(wrong) == target
            assert re.sub(r"\d+", "n", str(wrong)) == re.sub(r"\d+", "n", str(tree))


@pytest.fixture(scope="module")
def arith():
    return ArithDataset(seed=0, n_train=12, n_test=8, formats=ALL_FORMATS)


def test_every_solution_is_true_checks_and_its_program_prints_the_answer(arith):
    for skill in arith.skills():
        for example in arith.train(skill)[:4] + arith.test(skill)[:4]:
            solution = arith.solution(example)
            assert solution.answer == example.answer and solution.steps[-1].value == example.answer
            assert run(solution.program) == example.answer
            written = tuple(f"{s.expression} = {s.value}" for s in solution.steps)
            assert arith.check_steps(example, written) is True, (example, written)
            assert solution.computational is (len(solution.steps) > 1)


def test_the_step_checker_rejects_wrong_arithmetic_foreign_operands_and_a_wrong_end():
    ds = ArithDataset()
    example = Example("x", "ops/question", "What is (12+7)*3?", "57")
    assert ds.check_steps(example, ("12 + 7 = 19", "19 * 3 = 57")) is True
    assert ds.check_steps(example, ("Add first: 12 + 7 = 19", "then 19 × 3 = 57")) is True
    assert ds.check_steps(example, ("12 + 7 = 20", "20 * 3 = 57")) is False     # false arithmetic
    assert ds.check_steps(example, ("12 + 8 = 20", "19 * 3 = 57")) is False     # 8 and 19 come from nowhere
    assert ds.check_steps(example, ("12 + 7 = 19", "19 * 2 = 38")) is False     # ends elsewhere
    assert ds.check_steps(example, ("I just know it",)) is False


def test_a_wrong_solution_has_the_shape_true_steps_and_a_random_answer_of_the_same_form(arith):
    rng = random.Random(0)
    for skill in arith.skills():
        example = arith.train(skill)[0]
        right, wrong = arith.solution(example), arith.wrong_solution(example, rng)
        assert len(wrong.steps) == len(right.steps) and wrong.answer != example.answer
        assert len(wrong.answer) == len(example.answer) and wrong.steps[-1].value == wrong.answer
        assert all(evaluate(s.expression.replace(" ", "")) == int(s.value) for s in wrong.steps)
        assert run(wrong.program) == wrong.answer


def test_direct_tune_base_answers_are_unchanged_by_wrong_solutions():
    """A wrong solution draws its answer first, from the same generator: the direct control's stream is today's."""
    ds = ArithDataset()
    example = ds.train("add/question")[0]
    assert ds.wrong_solution(example, random.Random(5)).answer == ds.random_answer(example, random.Random(5))


def test_backward_questions_fobar_style():
    ds = ArithDataset()
    example = next(e for e in ds.test("add/question") if ds.expression(e) == "{}+{}".format(*re.findall(r"\d+", e.question)))
    a, b = re.findall(r"\d+", example.question)
    question, masked = ds.backward_question(example, "100")
    assert (question, masked) == (f"x + {b} = 100. What is x?", a)
    word = ds.test("add/word")[0]
    first = re.search(r"\d+", ds.expression(word)).group()
    question, masked = ds.backward_question(word, "7")
    assert masked == first and "X" in question and question.endswith(
        "If we know the answer to the above question is 7, what is the value of unknown variable X?")


def test_the_backward_format_poses_the_problem_the_other_way_with_one_solution(arith):
    for op in ("add", "sub", "mul", "div", "ops", "cplex"):
        for example in arith.test(f"{op}/backward") + arith.train(f"{op}/backward"):
            left, result = example.question.removesuffix(". What is x?").split(" = ")
            solutions = [x for x in range(0, 2000) if _equals(left.replace("x", str(x)), int(result))]
            assert solutions == [int(example.answer)], example


def _equals(expression: str, result: int) -> bool:
    try:
        return evaluate(expression.replace(" ", "")) == result
    except ValueError:  # an inexact division: not a solution
        return False


def test_backward_is_opt_in_and_keyed_only_when_chosen():
    default, five = ArithDataset(), ArithDataset(formats=ALL_FORMATS)
    assert len(default.skills()) == 24 and "formats" not in default.identity()
    assert len(five.skills()) == 30 and five.identity()["formats"] == list(ALL_FORMATS)
    assert five.test("add/question") == default.test("add/question")  # the other skills' questions are unchanged
    assert five.resolve("backward") == [f"{op}/backward" for op in ("add", "sub", "mul", "div", "ops", "cplex")]
    assert five.skill_groups().of_skill["mul/backward"] == {"operation": "mul", "format": "backward"}
    with pytest.raises(UserError, match="backwards.*valid choices: question, instruction, symbol, word, backward"):
        ArithDataset(formats=["question", "backwards"])
    with pytest.raises(UserError, match="distinct"):
        ArithDataset(formats=["word", "word"])


# ---- jsonl: solutions from optional rationale and program fields -------------------------------------------------
def _jsonl(tmp_path, rows):
    from ntkeval.data.jsonl import JsonlDataset

    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return JsonlDataset(path=str(path), n_train=2, n_test=2)


def _sums(skill, n=4, **extra):
    return [{"question": f"Ann has {i} apples and buys {i + 10}. How many now?", "answer": str(2 * i + 10),
             "skill": skill, **{k: v(i) for k, v in extra.items()}} for i in range(1, n + 1)]


def test_jsonl_solutions_come_from_rationale_and_program(tmp_path):
    ds = _jsonl(tmp_path, _sums("steps", rationale=lambda i: f"Start with {i}.\n{i} + {i + 10} = {2 * i + 10}")
                + _sums("code", program=lambda i: f"print({i} + {i + 10})"))
    example = ds.train("steps")[0]
    i = int(re.search(r"\d+", example.question).group())
    solution = ds.solution(example)
    assert solution.steps == (Step(f"Start with {i}.", ""), Step(f"{i} + {i + 10} = {2 * i + 10}", ""))
    assert solution.program is None and solution.computational is False
    code = ds.solution(ds.train("code")[0])
    assert code.steps == () and code.computational is True and run(code.program) == ds.train("code")[0].answer
    assert ds.format_problem("cot", ["steps"]) is None and ds.format_problem("pot", ["code"]) is None
    assert ds.format_problem("hybrid", ["steps", "code"]) is None
    assert "no rationale on some train questions of code;" in ds.format_problem("cot", ["steps", "code"])
    assert "no program on some train questions of steps;" in ds.format_problem("pot", ["steps", "code"])
    assert ds.check_steps(example, ("1 + 1 = 2",)) is None


def test_jsonl_wrong_solutions_keep_the_lines_and_put_the_random_answer_where_the_answer_was(tmp_path):
    ds = _jsonl(tmp_path, _sums("steps", rationale=lambda i: f"Start with {i}.\n{i} + {i + 10} = {2 * i + 10}"))
    example = ds.train("steps")[0]
    wrong = ds.wrong_solution(example, random.Random(1))
    assert wrong.answer != example.answer and len(wrong.steps) == 2
    assert wrong.steps[1].expression.endswith(f"= {wrong.answer}") and wrong.steps[0].expression.startswith("Start")
    assert wrong.answer == ds.random_answer(example, random.Random(1))  # drawn first: direct's stream


def test_jsonl_backward_question_masks_the_first_number(tmp_path):
    ds = _jsonl(tmp_path, _sums("steps"))
    example = ds.test("steps")[0]
    i = re.search(r"\d+", example.question).group()
    question, masked = ds.backward_question(example, "99")
    assert masked == i and question.startswith("Ann has X apples") and question.endswith(
        "If we know the answer to the above question is 99, what is the value of unknown variable X?")


def test_jsonl_keys_are_unchanged_without_solution_fields(tmp_path):
    """The data digest leaves out absent rationale/program fields, so every jsonl key made before them holds."""
    import hashlib

    rows = _sums("steps")
    ds = _jsonl(tmp_path, rows)
    records = [{"question": r["question"], "answer": r["answer"], "skill": r["skill"], "format": None,
                "kind": "integer"} for r in rows]
    assert ds.identity()["data_sha256"] == hashlib.sha256(json.dumps(records).encode()).hexdigest()
