"""Tests of the synthetic arithmetic set: answers re-derived independently, determinism, duplicate-free splits (leaks:
test_split_leaks.py), the API."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import pytest

from ntkeval.data.arith import NAMES, OPS, THINGS, ArithDataset, evaluate
from ntkeval.data.base import Example
from ntkeval.errors import UserError

SEEDS = range(6)
SPLITS = ("train", "test")


def exact_value(expression: str) -> Fraction:
    """An evaluator independent of the module's: Python arithmetic on Fractions, after a strict character check."""
    assert re.fullmatch(r"[0-9+\-*/()]+", expression), expression
    wrapped = re.sub(r"\d+", lambda m: f"Fraction({m.group()})", expression)
    return eval(wrapped, {"__builtins__": {}, "Fraction": Fraction})


def problem(expression: str) -> str:
    """The problem an expression poses, ignoring operand order of a lone + or * (our own normalisation)."""
    numbers = re.findall(r"\d+", expression)
    if re.fullmatch(r"\d+[+*]\d+", expression):
        return ("+" if "+" in expression else "*") + ",".join(sorted(numbers, key=int))
    return expression


def numbers(text: str) -> list[int]:
    return sorted(int(n) for n in re.findall(r"\d+", text))


SHAPE_OF_OP = {  # the arithmetic each operation must pose, checked on the expression behind every example
    "add": r"\d+\+\d+", "sub": r"\d+-\d+", "mul": r"\d+\*\d+", "div": r"\d+/\d+",
}


def check_example(ds: ArithDataset, example: Example) -> None:
    op, fmt = example.skill.split("/")
    expression = ds.expression(example)
    value = exact_value(expression)
    assert value.denominator == 1, (example, expression)  # every division in every step is exact
    assert example.answer == str(value.numerator), (example, expression)
    operators = len(re.findall(r"[-+*/]", expression))
    if op in SHAPE_OF_OP:
        assert re.fullmatch(SHAPE_OF_OP[op], expression), (op, expression)
    elif op == "ops":
        assert "(" in expression and operators == 2, expression
    else:
        assert "(" in expression and operators >= 3, expression  # several steps, where ops has two
    if op == "sub":
        assert value >= 0
    assert abs(value) < 10_000
    if fmt == "question":
        assert example.question == f"What is {expression}?"
    elif fmt == "instruction":
        assert example.question.startswith("Compute ") and example.question.replace(" ", "") == f"Compute{expression}."
    elif fmt == "symbol":
        assert example.question == f"{expression}="
    else:  # a story must carry exactly the expression's operands, and no bare expression
        assert numbers(example.question) == numbers(expression), (example.question, expression)
        assert not re.search(r"\d\s*[-+*/=]\s*\d", example.question), example.question


@pytest.mark.parametrize("seed", SEEDS)
def test_every_answer_matches_an_independent_evaluation(seed):
    ds = ArithDataset(seed=seed)
    for skill in ds.skills():
        for split in SPLITS:
            examples = getattr(ds, split)(skill)
            for i, example in enumerate(examples):
                assert example.id == f"{skill}/{split}/{i}" and example.skill == skill
                check_example(ds, example)


@pytest.mark.parametrize("max_operand, n_test", [(9, 4), (20, 10), (500, 10)])
def test_other_operand_ranges_stay_correct_and_bounded(max_operand, n_test):
    ds = ArithDataset(seed=3, n_train=10, n_test=n_test, max_operand=max_operand)
    for skill in ds.skills():
        for example in ds.train(skill) + ds.test(skill):
            check_example(ds, example)
            if skill.startswith(("add", "sub")):
                assert max(numbers(ds.expression(example))) <= max_operand


def test_module_evaluator_is_exact_and_safe():
    assert evaluate("((4+6)*3-8)/2") == 11
    assert evaluate("45-(6*4)") == 21
    assert evaluate("3-10") == -7
    for bad in ("7/2", "2**3", "__import__('os')", "x+1", "1.5+1", "4//2", "True+1"):
        with pytest.raises((ValueError, SyntaxError)):
            evaluate(bad)


def all_examples(ds: ArithDataset) -> list[Example]:
    return [e for skill in ds.skills() for e in ds.train(skill) + ds.test(skill)]


def test_deterministic_within_and_across_processes():
    first, second = ArithDataset(seed=7), ArithDataset(seed=7)
    assert all_examples(first) == all_examples(second)
    assert all_examples(ArithDataset(seed=8)) != all_examples(first)
    for skill in first.skills():  # every skill, not just the whole, must change with the seed
        assert ArithDataset(seed=8).test(skill) != first.test(skill)
    code = ("from ntkeval.data.arith import ArithDataset; d = ArithDataset(seed=7); "
            "print(repr([e for s in d.skills() for e in d.train(s) + d.test(s)]))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert outputs == {repr(all_examples(first)) + "\n"}


def test_no_duplicate_problems_within_a_split_and_sizes_honoured():
    ds = ArithDataset(seed=1, n_train=40, n_test=25)
    for skill in ds.skills():
        for split, wanted in (("train", 40), ("test", 25)):
            examples = getattr(ds, split)(skill)
            assert len(examples) == wanted
            assert len({problem(ds.expression(e)) for e in examples}) == wanted, skill
            assert len({e.question for e in examples}) == wanted, skill
    empty = ArithDataset(n_train=0, n_test=3)
    assert empty.train("add/word") == [] and len(empty.test("add/word")) == 3


def test_impossible_sizes_and_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="max_operand"):
        ArithDataset(max_operand=3, n_train=50).train("add/question")
    # With operands 1..9 exactly 11 of the 45 unordered sums fall in the test bucket: all are found, a 12th cannot be.
    assert len(ArithDataset(max_operand=9, n_test=11).test("add/question")) == 11
    with pytest.raises(UserError, match="only 11 distinct test problems"):
        ArithDataset(max_operand=9, n_test=12).test("add/question")
    for kwargs in ({"n_train": -1}, {"n_test": 2.5}, {"max_operand": 1}, {"seed": "x"}):
        with pytest.raises(UserError):
            ArithDataset(**kwargs)


def test_resolve_selectors():
    ds = ArithDataset()
    skills = ds.skills()
    assert len(skills) == 24 and skills[:5] == ["add/question", "add/instruction", "add/symbol", "add/word",
                                                "sub/question"]
    assert ds.resolve("all") == skills
    assert ds.resolve("add") == ["add/question", "add/instruction", "add/symbol", "add/word"]
    assert ds.resolve("word") == [f"{op}/word" for op in OPS]
    assert ds.resolve("add/word") == ["add/word"]
    assert ds.resolve(["mul/symbol", "add", "add/word", "mul/symbol"]) == ds.resolve("add") + ["mul/symbol"]
    assert ds.resolve(("symbol", "cplex")) == [s for s in skills if s.endswith("/symbol") or s.startswith("cplex/")]
    assert ds.resolve(["all", "add"]) == skills


@pytest.mark.parametrize("call", ["resolve", "resolve_list", "train", "test"])
def test_unknown_skill_names_the_value_and_the_choices(call):
    ds = ArithDataset()
    with pytest.raises(UserError) as error:
        if call == "resolve_list":
            ds.resolve(["add", "pow/word"])
        else:
            getattr(ds, call)("pow/word")
    message = str(error.value)
    assert "'pow/word'" in message and "valid choices:" in message
    assert "add/question" in message and "cplex/word" in message
    if call.startswith("resolve"):
        assert "all" in message and "ops" in message and "instruction" in message


def test_random_answer_has_the_same_form_and_is_wrong():
    ds, rng = ArithDataset(seed=2), random.Random(0)
    cases = [e.answer for e in all_examples(ds)] + ["0", "7", "-7", "10", "-99", "100", "9999", "-1000"]
    for answer in cases:
        example = Example("x/y/test/0", "add/question", "?", answer)
        for _ in range(20):
            wrong = ds.random_answer(example, rng)
            assert re.fullmatch(r"-?(0|[1-9]\d*)", wrong) and wrong != "-0", wrong
            assert wrong != answer and wrong.startswith("-") == answer.startswith("-")
            assert len(wrong.lstrip("-")) == len(answer.lstrip("-")), (answer, wrong)
    seen = Counter(ds.random_answer(Example("x", "add/question", "?", "4"), rng) for _ in range(2000))
    assert set(seen) == set("012356789")  # every other digit is reachable
    assert {ds.random_answer(Example("x", "a", "?", "-1"), rng) for _ in range(500)} == {f"-{d}" for d in "23456789"}


def test_word_problems_vary_their_stories():
    ds = ArithDataset(seed=0)
    for op in OPS:
        questions = [e.question for e in ds.train(f"{op}/word") + ds.test(f"{op}/word")]
        assert len({q.split()[0] for q in questions}) >= 3, op  # names and openings vary
        stories = set()
        for q in questions:
            for word in NAMES + THINGS:
                q = re.sub(rf"\b{word}\b", "_", q)
            stories.add(re.sub(r"\d+", "#", q))
        assert len(stories) >= 3, (op, stories)  # several templates per operation (one per shape for ops/cplex)


def test_identity_and_default_sizes():
    assert ArithDataset(seed=4, n_train=5, n_test=6, max_operand=50).identity() == {
        "name": "arith", "seed": 4, "n_train": 5, "n_test": 6, "max_operand": 50, "version": 2}
    assert len(all_examples(ArithDataset(seed=123))) == 24 * (32 + 20)


def test_a_bad_list_of_formats_is_one_line_naming_the_setting_and_the_choices():
    from ntkeval.errors import UserError

    valid = "question, instruction, symbol, word, backward"
    for formats, message in ((["question", "question"], "dataset.formats=['question', 'question'] is invalid"),
                             ([], "dataset.formats=[] is invalid")):
        with pytest.raises(UserError) as raised:
            ArithDataset(formats=formats)
        assert str(raised.value) == (f"{message}; expected a non-empty list of distinct arith formats among {valid}, "
                                     f"e.g. [{valid}]")
    with pytest.raises(UserError, match=rf"^unknown arith format \(dataset.formats\) 'speech'; valid choices: {valid}$"):
        ArithDataset(formats=["question", "speech"])
