"""Evolved (harder) arith problems for tune-rl's evolve=depth: the same skill and surface, larger numbers (depth 1),
one more operation (depth 2), exact answers re-derived here independently, and never a test problem."""

from __future__ import annotations

import random
import re
from fractions import Fraction

import pytest

from ntkeval.data.arith import ArithDataset, split_of
from ntkeval.data.arith_solutions import steps_correct
from ntkeval.errors import UserError
from tests.test_split_leaks import signature

SKILLS = [f"{op}/{fmt}" for op in ("add", "sub", "mul", "div", "ops", "cplex")
          for fmt in ("question", "instruction", "symbol", "word")]


def shown_expression(question: str) -> str:
    """The expression a question/instruction/symbol text shows, spaces removed."""
    body = re.sub(r"^(What is |Compute )|[?.=]$", "", question)
    return body.replace(" ", "")


def exact(expression: str) -> Fraction:
    assert re.fullmatch(r"[0-9+\-*/()]+", expression), expression
    return eval(re.sub(r"\d+", lambda m: f"Fraction({m.group()})", expression), {"Fraction": Fraction})


def surface(text: str) -> str:
    """The text with its expression (numbers, operators, brackets, spaces) collapsed to E."""
    return re.sub(r"[\d+\-*/() ]+", "E", text)


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


@pytest.fixture(scope="module")
def dataset():
    return ArithDataset(seed=0, n_train=6, n_test=6)


def test_hand_checked_evolutions_of_one_addition(dataset):
    example = dataset.train("add/question")[0]
    assert (example.question, example.answer) == ("What is 82+77?", "159")
    one = dataset.evolved(example, 1, random.Random(0))
    assert (one.example.question, one.example.answer) == ("What is 865+395?", "1260")  # 865 + 395 = 1260
    assert [(s.expression, s.value) for s in one.solution.steps] == [("865 + 395", "1260")]
    two = dataset.evolved(example, 2, random.Random(0))
    assert (two.example.question, two.example.answer) == ("What is 498+415+941?", "1854")  # 913 + 941
    assert [(s.expression, s.value) for s in two.solution.steps] == [("498 + 415", "913"), ("913 + 941", "1854")]
    assert (one.kind, one.source, one.example.skill) == ("evolve", example.id, "add/question")


def test_a_word_problem_gets_one_more_sentence(dataset):
    example = dataset.train("sub/word")[0]
    two = dataset.evolved(example, 2, random.Random(0))
    assert two.example.question == ("A shelf holds 865 pencils. Mia takes 395 of them. How many pencils are still on "
                                    "the shelf? Then 389 are taken away. How many are left now?")
    assert two.example.answer == "81"  # 865 - 395 = 470; 470 - 389 = 81


@pytest.mark.parametrize("skill", SKILLS)
def test_evolved_problems_are_harder_exact_and_of_the_same_skill(dataset, skill):
    op, fmt = skill.split("/")
    for index, example in enumerate(dataset.train(skill)[:3]):
        base_steps = len(dataset.solution(example).steps)
        for depth in (1, 2):
            item = dataset.evolved(example, depth, random.Random(f"{index}:{depth}"))
            question, answer = item.example.question, item.example.answer
            assert item.example.skill == skill and item.kind == "evolve" and item.source == example.id
            assert max(numbers(question)) > max(numbers(example.question))  # larger numbers
            assert len(item.solution.steps) == base_steps + depth - 1  # depth 2: exactly one more operation
            assert item.solution.answer == answer == item.solution.steps[-1].value
            assert steps_correct(question, answer, tuple(f"{s.expression} = {s.value}" for s in item.solution.steps))
            if fmt != "word":
                assert exact(shown_expression(question)) == int(answer)  # re-derived independently
                same_surface = re.sub(r"\d+", "N", example.question)
                if depth == 1:  # the same shape: only the numbers differ
                    assert re.sub(r"\d+", "N", question) == same_surface
                else:  # the same words around a longer expression
                    assert surface(question) == surface(example.question)
            if depth == 2 and op in ("add", "sub", "mul", "div"):  # a one-operation skill repeats its own operation
                symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
                assert all(f" {symbol} " in s.expression for s in item.solution.steps)
            assert split_of(question) == "train"
            assert item.wrong.answer != answer and len(item.wrong.steps) == len(item.solution.steps)


def test_evolved_problems_are_never_test_problems(dataset):
    tests = {signature(e) for skill in dataset.skills() for e in dataset.test(skill)}
    for skill in SKILLS:
        for example in dataset.train(skill):
            for depth in (1, 2):
                assert signature(dataset.evolved(example, depth, random.Random(depth)).example) not in tests


def test_evolve_is_deterministic_given_the_generator(dataset):
    example = dataset.train("cplex/word")[1]
    assert dataset.evolved(example, 2, random.Random(5)) == dataset.evolved(example, 2, random.Random(5))


def test_bad_depths_and_backward_skills_are_refused():
    data = ArithDataset(seed=0, n_train=2, n_test=2, formats=("question", "backward"))
    with pytest.raises(UserError, match=r"evolve depth 3; valid choices: 1, 2"):
        data.evolved(data.train("add/question")[0], 3, random.Random(0))
    with pytest.raises(UserError, match="backward skill 'add/backward'"):
        data.evolved(data.train("add/backward")[0], 1, random.Random(0))
    assert data.augmentation_problem("depth", ["add/question"]) is None
    assert "cannot make depth" in data.augmentation_problem("depth", ["add/question", "add/backward"])
