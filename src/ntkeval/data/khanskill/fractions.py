"""KhanSkill domain "fractions": simplifying, equivalent fractions, the four operations, mixed numbers, comparing."""

from __future__ import annotations

import random
from fractions import Fraction
from math import gcd, lcm

from ntkeval.data.khanskill.core import Problem, SkillBank, fraction_text, mixed_text, problem
from ntkeval.data.khanskill.number_text import shown
from ntkeval.data.khanskill.work import Work, compare_program, step, worked

bank = SkillBank()
FR = "fractions"


def proper(rng: random.Random, low: int = 2, high: int = 12) -> Fraction:
    """A fraction strictly between 0 and 1 in lowest terms, its denominator in [low, high]."""
    while True:
        den = rng.randint(low, high)
        num = rng.randint(1, den - 1)
        if gcd(num, den) == 1:
            return Fraction(num, den)


def _two(rng: random.Random, same_denominator: bool | None = None) -> tuple[Fraction, Fraction] | None:
    """Two proper fractions; same_denominator True/False forces like or unlike denominators."""
    a, b = proper(rng), proper(rng)
    if same_denominator is not None and (a.denominator == b.denominator) != same_denominator:
        return None
    return a, b


@bank.skill(FR, "simplify-fraction", "Simplify a fraction", 4, "lowest-terms")
def simplify_fraction(rng: random.Random) -> Problem | None:
    simplest, factor = proper(rng, 2, 15), rng.randint(2, 12)
    a, b = simplest.numerator * factor, simplest.denominator * factor
    text = rng.choice(("Write {a}/{b} in simplest form.", "Simplify the fraction {a}/{b}."))
    g = gcd(a, b)
    work = worked(step(f"gcd({a}, {b})", g, "Greatest common factor:"), step(f"{a} // {g}", a // g),
                  step(f"{b} // {g}", b // g), step(f"{a // g} / {b // g}", fraction_text(Fraction(a, b))))
    return problem(text.format(a=a, b=b), fraction_text(Fraction(a, b)), a=a, b=b, work=work)


@bank.skill(FR, "equivalent-fractions", "Find the missing number in equivalent fractions", 4, "integer")
def equivalent_fractions(rng: random.Random) -> Problem | None:
    base, factor = proper(rng, 2, 12), rng.randint(2, 9)
    p, q = base.numerator, base.denominator
    if rng.random() < 0.5:
        work = worked(step(f"{q * factor} // {q}", factor, "The denominator was multiplied by"),
                      step(f"{p} * {factor}", p * factor))
        return problem(f"What number goes in the blank: {p}/{q} = _/{q * factor}?", str(p * factor),
                       p=p, q=q, den=q * factor, _blank="numerator", work=work)
    work = worked(step(f"{p * factor} // {p}", factor, "The numerator was multiplied by"),
                  step(f"{q} * {factor}", q * factor))
    return problem(f"What number goes in the blank: {p}/{q} = {p * factor}/_?", str(q * factor),
                   p=p, q=q, num=p * factor, _blank="denominator", work=work)


def _binary(rng: random.Random, op: str, pair: tuple[Fraction, Fraction] | None, value) -> Problem | None:
    if pair is None:
        return None
    a, b = pair
    text = rng.choice(("What is {a} {op} {b}?", "Calculate {a} {op} {b}."))
    operands = sorted((a, b)) if op in "+×" else (a, b)  # a+b and b+a pose one problem
    return problem(text.format(a=shown(a), b=shown(b), op=op), fraction_text(value(a, b)),
                   key=op.join(map(shown, operands)), a=a, b=b, work=_binary_work(op, a, b, value(a, b)))


def _binary_work(op: str, a: Fraction, b: Fraction, result: Fraction) -> Work:
    """The school method: a common denominator for + and -, numerators times numerators for ×, the reciprocal
    for ÷; then the fraction the new numerator and denominator make."""
    (p, q), (r, s), answer = (a.numerator, a.denominator), (b.numerator, b.denominator), fraction_text(result)
    if op == "×":
        return worked(step(f"{p} * {r}", p * r), step(f"{q} * {s}", q * s), step(f"{p * r} / {q * s}", answer))
    if op == "÷":
        return worked(step(f"{p} * {s}", p * s, "Multiply by the reciprocal:"), step(f"{q} * {r}", q * r),
                      step(f"{p * s} / {q * r}", answer))
    if q == s:
        top = p + r if op == "+" else p - r
        return worked(step(f"{p} {op} {r}", top, "Add the numerators:" if op == "+" else "Subtract the numerators:"),
                      step(f"{top} / {q}", answer))
    den = lcm(q, s)
    top = p * (den // q) + r * (den // s) if op == "+" else p * (den // q) - r * (den // s)
    return worked(step(f"lcm({q}, {s})", den, "Common denominator:"),
                  step(f"{p} * {den // q} {op} {r} * {den // s}", top), step(f"{top} / {den}", answer))


@bank.skill(FR, "add-like-denominators", "Add fractions with like denominators", 4, "fraction")
def add_like_denominators(rng: random.Random) -> Problem | None:
    return _binary(rng, "+", _two(rng, same_denominator=True), lambda a, b: a + b)


@bank.skill(FR, "add-unlike-denominators", "Add fractions with unlike denominators", 5, "fraction")
def add_unlike_denominators(rng: random.Random) -> Problem | None:
    return _binary(rng, "+", _two(rng, same_denominator=False), lambda a, b: a + b)


@bank.skill(FR, "subtract-unlike-denominators", "Subtract fractions with unlike denominators", 5, "fraction")
def subtract_unlike_denominators(rng: random.Random) -> Problem | None:
    pair = _two(rng, same_denominator=False)
    if pair is None or pair[0] <= pair[1]:
        return None
    return _binary(rng, "-", pair, lambda a, b: a - b)


@bank.skill(FR, "multiply-fractions", "Multiply fractions", 5, "fraction")
def multiply_fractions(rng: random.Random) -> Problem | None:
    return _binary(rng, "×", _two(rng), lambda a, b: a * b)


@bank.skill(FR, "divide-fractions", "Divide fractions", 6, "fraction")
def divide_fractions(rng: random.Random) -> Problem | None:
    return _binary(rng, "÷", _two(rng), lambda a, b: a / b)


@bank.skill(FR, "improper-to-mixed", "Write an improper fraction as a mixed number", 4, "fraction")
def improper_to_mixed(rng: random.Random) -> Problem | None:
    den = rng.randint(2, 12)
    num = rng.randint(den + 1, 10 * den)
    if num % den == 0 or gcd(num, den) != 1:
        return None
    work = worked(step(f"{num} // {den}", num // den, "Whole part:"), step(f"{num} % {den}", num % den, "Remainder:"),
                  step(f"{num // den} + {num % den} / {den}", mixed_text(Fraction(num, den))))
    return problem(f"Write {num}/{den} as a mixed number.", mixed_text(Fraction(num, den)), num=num, den=den,
                   work=work)


@bank.skill(FR, "fraction-of-a-number", "Find a fraction of a whole number", 4, "integer")
def fraction_of_a_number(rng: random.Random) -> Problem | None:
    part = proper(rng, 2, 12)
    n = part.denominator * rng.randint(2, 15)
    text = rng.choice(("What is {f} of {n}?", "Find {f} of {n}."))
    work = worked(step(f"{n} // {part.denominator}", n // part.denominator),
                  step(f"{part.numerator} * {n // part.denominator}", part.numerator * n // part.denominator))
    return problem(text.format(f=shown(part), n=n), str(part.numerator * n // part.denominator), f=part, n=n,
                   work=work)


@bank.skill(FR, "compare-fractions", "Compare fractions", 4, "text", ("<", ">", "="))
def compare_fractions(rng: random.Random) -> Problem | None:
    a = proper(rng, 2, 12)
    if rng.random() < 0.15:  # an unsimplified twin: equal values in different terms
        factor = rng.randint(2, 5)
        right = f"{a.numerator * factor}/{a.denominator * factor}"
        return problem(f"Which symbol goes in the blank: {shown(a)} _ {right}? Answer <, >, or =.", "=",
                       a=a, b_num=a.numerator * factor, b_den=a.denominator * factor,
                       work=_compare_work(a, a.numerator * factor, a.denominator * factor, "="))
    b = proper(rng, 2, 12)
    if a == b:
        return None
    answer = "<" if a < b else ">"
    return problem(f"Which symbol goes in the blank: {shown(a)} _ {shown(b)}? Answer <, >, or =.", answer,
                   a=a, b_num=b.numerator, b_den=b.denominator,
                   work=_compare_work(a, b.numerator, b.denominator, answer))


def _compare_work(a: Fraction, b_num: int, b_den: int, answer: str) -> Work:
    """Cross-multiply: a/b against c/d is a*d against c*b."""
    left, right = f"{a.numerator} * {b_den}", f"{b_num} * {a.denominator}"
    return worked(step(left, a.numerator * b_den, "Cross-multiply:"), step(right, b_num * a.denominator),
                  step(f"{a.numerator * b_den} {answer} {b_num * a.denominator}", answer),
                  program=compare_program(left, right), computational=False)
