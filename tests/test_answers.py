"""Tests of answer kinds: equivalent forms accepted, wrong values and wrong forms rejected, unsafe input refused,
and wrong answers of the same form for random-answer controls."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from ntkeval.data.answer_kinds import KINDS, equivalent, is_canonical, parse, wrong_answer

SAME = [  # (given, canonical, kind): a person or a model may write these, and they are right
    ("12", "12", "integer"), ("+12", "12", "integer"), ("12.0", "12", "integer"), ("1,200", "1200", "integer"),
    ("-7", "-7", "integer"), (" 42. ", "42", "integer"), ("\u22127", "-7", "integer"), ("0", "0", "integer"),
    ("0.5", "0.5", "decimal"), (".5", "0.5", "decimal"), ("1/2", "0.5", "decimal"), ("0.50", "0.5", "decimal"),
    ("$3.50", "3.50", "decimal"), ("3.5", "3.50", "decimal"), ("4", "4.0", "decimal"), ("2 1/2", "2.5", "decimal"),
    ("0.1", "1/10", "fraction"), ("3/6", "1/2", "fraction"), ("0.5", "1/2", "fraction"), ("1 1/2", "3/2", "fraction"),
    ("6/4", "1 1/2", "fraction"), ("-3/4", "-3/4", "fraction"), ("-0.75", "-3/4", "fraction"), ("2", "4/2", "fraction"),
    ("7/3", "2 1/3", "fraction"), ("-2 1/3", "-7/3", "fraction"), ("22/15", "22/15", "fraction"),
    ("3/4", "3/4", "lowest-terms"), ("1 1/2", "3/2", "lowest-terms"), ("3/2", "1 1/2", "lowest-terms"),
    ("5", "5", "lowest-terms"),
    ("45%", "45%", "percent"), ("45", "45%", "percent"), ("45 %", "45%", "percent"), ("12.50%", "12.5%", "percent"),
    ("2x+3", "2x+3", "expression"), ("3+2x", "2x+3", "expression"), ("2*x + 3", "2x+3", "expression"),
    ("x+x+3", "2x+3", "expression"), ("2(x+1)+1", "2x+3", "expression"), ("10pi", "10π", "expression"),
    ("10*pi", "10π", "expression"), ("\u03c0*10", "10π", "expression"), ("78125", "5^7", "expression"),
    ("5**7", "5^7", "expression"), ("5^3 × 5^4", "5^7", "expression"), ("3n+30", "3(n+10)", "expression"),
    ("n/4 - 2", "n/4-2", "expression"), ("0.25n-2", "n/4-2", "expression"), ("x(x+1)", "x^2+x", "expression"),
    ("5x+3", "5x+3", "simplified"), ("3+5x", "5x+3", "simplified"), ("-x + 2", "-x+2", "simplified"),
    ("2 - x", "-x+2", "simplified"), ("-3x-12", "-3x-12", "simplified"),
    ("x=5", "x=5", "equation"), ("x = 5", "x=5", "equation"), ("5 = x", "x=5", "equation"), ("5", "x=5", "equation"),
    ("x=10/2", "x=5", "equation"), ("x=-8", "x=-8", "equation"), ("x=0.5", "x=1/2", "equation"),
    ("3:4", "3:4", "ratio"), ("3 : 4", "3:4", "ratio"),
    ("(3, -2)", "(3, -2)", "point"), ("(3,-2)", "(3, -2)", "point"), ("( 3 , -2.0 )", "(3, -2)", "point"),
    ("(1/2, 4)", "(0.5, 4)", "point"),
    ("yes", "yes", "text"), ("Yes.", "yes", "text"), ("  YES ", "yes", "text"), ("<", "<", "text"),
    ("ten thousands", "ten thousands", "text"), ("Hundred Thousands", "hundred thousands", "text"),
]

DIFFERENT = [  # (given, canonical, kind): wrong values, or right values in a form the kind does not accept
    ("13", "12", "integer"), ("6/2", "3", "integer"), ("3.5", "3", "integer"), ("x=3", "3", "integer"),
    ("", "0", "integer"), ("twelve", "12", "integer"), ("12 apples", "12", "integer"), ("1,20", "120", "integer"),
    ("0.51", "0.5", "decimal"), ("0.3333", "1/3", "decimal"), ("-0.5", "0.5", "decimal"), ("x", "0.5", "decimal"),
    ("2/3", "1/2", "fraction"), ("0.33", "1/3", "fraction"), ("1/2+1/2", "1", "fraction"), ("3/4", "-3/4", "fraction"),
    ("2 1/3", "7/2", "fraction"), ("7/3", "2/3", "fraction"),
    ("6/8", "3/4", "lowest-terms"), ("0.75", "3/4", "lowest-terms"), ("2 3/2", "7/2", "lowest-terms"),
    ("1 2/4", "3/2", "lowest-terms"), ("4/1", "4", "lowest-terms"),
    ("0.45", "45%", "percent"), ("46%", "45%", "percent"), ("45%%", "45%", "percent"),
    ("2x+4", "2x+3", "expression"), ("2y+3", "2x+3", "expression"), ("31.4159", "10π", "expression"),
    ("10", "10π", "expression"), ("x^2", "2x", "expression"), ("", "x", "expression"),
    ("3(n+10", "3n+30", "expression"),
    ("3x+2x+3", "5x+3", "simplified"), ("5(x+1)-2", "5x+3", "simplified"), ("5x+4", "5x+3", "simplified"),
    ("5x+3+0", "5x+3", "simplified"), ("-3(x+4)", "-3x-12", "simplified"),
    ("x=6", "x=5", "equation"), ("y=5", "x=5", "equation"), ("2x=10", "x=5", "equation"), ("x=5=5", "x=5", "equation"),
    ("x", "x=5", "equation"), ("x=-5", "x=5", "equation"),
    ("6:8", "3:4", "ratio"), ("4:3", "3:4", "ratio"), ("0.75", "3:4", "ratio"), ("3/4", "3:4", "ratio"),
    ("(-2, 3)", "(3, -2)", "point"), ("(3, 2)", "(3, -2)", "point"), ("3, -2", "(3, -2)", "point"),
    ("(3, -2, 1)", "(3, -2)", "point"),
    ("no", "yes", "text"), ("y", "yes", "text"), ("", "yes", "text"), (">", "<", "text"),
    ("tens", "ten thousands", "text"),
]


@pytest.mark.parametrize("given, expected, kind", SAME)
def test_equivalent_forms_are_accepted(given, expected, kind):
    assert equivalent(given, expected, kind)


@pytest.mark.parametrize("given, expected, kind", DIFFERENT)
def test_wrong_values_and_forms_are_rejected(given, expected, kind):
    assert not equivalent(given, expected, kind)


def test_every_kind_is_described_and_unknown_kinds_are_named():
    assert set(KINDS) == {"integer", "decimal", "fraction", "lowest-terms", "percent", "expression", "simplified",
                          "equation", "ratio", "point", "text"}
    assert all(KINDS.values())
    with pytest.raises(ValueError, match="unknown answer kind 'number'; valid choices: integer, decimal"):
        equivalent("1", "1", "number")


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "x.__class__", "().__class__", "1 .real", "lambda: 1", "open('f')",
    "9^9^9^9", "2**3**4", "10^100000", "2^(10^10)", "9" * 40, "x" * 300, "exec('1')", "a;b", "x[0]", "'abc'",
])
@pytest.mark.timeout(60)  # an explosive power would hang rather than fail: a liveness guard, not a speed target
def test_unsafe_or_explosive_input_is_refused(text):
    assert parse(text) is None and not equivalent(text, "1", "expression")


def test_parse_reads_exact_values():
    assert str(parse("0.1+0.2")) == "3/10"  # no float rounding
    assert str(parse("2 1/3")) == "7/3"     # a mixed number, not 2*(1/3)
    assert str(parse("2x")) == "2*x" and str(parse("x(x+1)")) == "x*(x + 1)"
    assert parse("3(") is None and parse("") is None


@pytest.mark.parametrize("answer, kind, canonical", [
    ("12", "integer", True), ("-0", "integer", False), ("012", "integer", False), ("1,200", "integer", False),
    ("3.50", "decimal", True), ("-0.5", "decimal", True), ("-0.0", "decimal", False), (".5", "decimal", False),
    ("3/4", "fraction", True), ("6/8", "fraction", False), ("2 1/3", "fraction", True), ("2 4/3", "fraction", False),
    ("4/1", "lowest-terms", False), ("-3/4", "lowest-terms", True), ("45%", "percent", True), ("45", "percent", False),
    ("x=-3", "equation", True), ("x=-0", "equation", False), ("x = 3", "equation", False), ("3:4", "ratio", True),
    ("6:8", "ratio", False), ("(3, -2)", "point", True), ("(3,-2)", "point", False), ("(0.5, -1/2)", "point", True),
    ("5x+3", "simplified", True), ("5(x+1)", "simplified", False), ("10π", "expression", True),
    ("yes", "text", True), (" yes", "text", False),
])
def test_canonical_forms(answer, kind, canonical):
    assert is_canonical(answer, kind) == canonical


@pytest.mark.parametrize("answer, kind", [
    ("7", "integer"), ("0", "integer"), ("-42", "integer"), ("1000", "integer"), ("3.25", "decimal"),
    ("0.5", "decimal"), ("3.50", "decimal"), ("-12.7", "decimal"), ("3/4", "fraction"), ("1/2", "lowest-terms"),
    ("2 1/3", "fraction"), ("-5/6", "fraction"), ("45%", "percent"), ("12.5%", "percent"), ("5x+3", "simplified"),
    ("-3x-12", "simplified"), ("10π", "expression"), ("5^7", "expression"), ("7(n+2)", "expression"),
    ("x=-3", "equation"), ("x=0", "equation"), ("3:4", "ratio"), ("(3, -2)", "point"), ("(0.5, 7)", "point"),
])
def test_wrong_answers_keep_the_form_and_are_wrong(answer, kind):
    rng = random.Random(0)
    for _ in range(50):
        wrong = wrong_answer(answer, kind, rng)
        assert not equivalent(wrong, answer, kind) and is_canonical(wrong, kind), (answer, wrong)
        assert re.sub(r"\d", "#", wrong) == re.sub(r"\d", "#", answer), (answer, wrong)


def test_wrong_answers_reach_every_other_value_and_use_choices_for_text():
    rng = random.Random(1)
    assert set(Counter(wrong_answer("4", "integer", rng) for _ in range(2000))) == set("12356789")
    assert {wrong_answer("yes", "text", rng, ("yes", "no")) for _ in range(20)} == {"no"}
    assert {wrong_answer("<", "text", rng, ("<", ">", "=")) for _ in range(100)} == {">", "="}
    with pytest.raises(ValueError, match="no other choice"):
        wrong_answer("yes", "text", rng, ("yes", "YES"))
    with pytest.raises(ValueError, match="no wrong answer"):
        wrong_answer("x", "expression", rng)  # no number to change
    # a non-canonical answer of a user's own data still gets a wrong answer that its kind can read
    wrong = wrong_answer("0.50", "decimal", rng)
    assert re.fullmatch(r"0\.\d\d", wrong) and not equivalent(wrong, "0.50", "decimal")
