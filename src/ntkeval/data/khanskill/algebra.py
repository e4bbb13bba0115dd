"""KhanSkill domains "expressions" (evaluate, simplify, expand, write) and "linear-equations" (solve for x)."""

from __future__ import annotations

import random
import re

from ntkeval.data.khanskill import work as w
from ntkeval.data.khanskill.core import NAMES, Problem, SkillBank, linear_text, nonzero, problem
from ntkeval.data.khanskill.number_text import signed

bank = SkillBank()
EXPR, EQ = "expressions", "linear-equations"


@bank.skill(EXPR, "evaluate-expressions", "Evaluate an expression for a value of x", 6, "integer")
def evaluate_expressions(rng: random.Random) -> Problem | None:
    a, b, x = rng.randint(2, 12), rng.randint(1, 20), rng.randint(-6, 12)
    sx = signed(x)  # each form with its substitution, worked one operation at a time
    expression, value, substituted = rng.choice((
        (f"{a}x + {b}", a * x + b, f"{a} × {sx} + {b}"), (f"{a}x - {b}", a * x - b, f"{a} × {sx} - {b}"),
        (f"{a}(x + {b})", a * (x + b), f"{a} × ({x} + {b})"), (f"x^2 + {b}", x * x + b, f"{sx}^2 + {b}"),
        (f"{b} - {a}x", b - a * x, f"{b} - {a} × {sx}")))
    text = rng.choice((f"What is the value of {expression} when x = {x}?", f"Evaluate {expression} for x = {x}."))
    return problem(text, str(value), key=f"{expression}@{x}", expression=expression, x=x,
                   work=w.worked(*w.operation_steps(substituted)))


@bank.skill(EXPR, "evaluate-two-variables", "Evaluate an expression in two variables", 7, "integer")
def evaluate_two_variables(rng: random.Random) -> Problem | None:
    p, q = rng.randint(2, 9), rng.randint(2, 9)
    m, n = nonzero(rng, -8, 10), nonzero(rng, -8, 10)
    sm, sn = signed(m), signed(n)
    expression, value, substituted = rng.choice((
        (f"{p}m + {q}n", p * m + q * n, f"{p} × {sm} + {q} × {sn}"),
        (f"{p}m - {q}n", p * m - q * n, f"{p} × {sm} - {q} × {sn}"),
        (f"{p}mn + {q}", p * m * n + q, f"{p} × {sm} × {sn} + {q}")))
    text = f"What is the value of {expression} when m = {m} and n = {n}?"
    return problem(text, str(value), key=f"{expression}@{m},{n}", expression=expression, m=m, n=n,
                   work=w.worked(*w.operation_steps(substituted)))


@bank.skill(EXPR, "combine-like-terms", "Combine like terms", 7, "simplified")
def combine_like_terms(rng: random.Random) -> Problem | None:
    a, b, c, d = rng.randint(2, 12), rng.randint(1, 20), nonzero(rng, -9, 12), rng.randint(1, 20)
    if a + c == 0:
        return None
    middle = f"+ {c}x" if c > 0 else f"- {-c}x"
    expression = f"{a}x + {b} {middle} - {d}" if rng.random() < 0.5 else f"{b} + {a}x - {d} {middle}"
    work = w.worked(w.step(f"{a} + {signed(c)}", a + c, "Collect the x terms:"),
                    w.step(f"{b} - {d}", b - d, "Collect the numbers:"),
                    w.step(f"{a + c} * x + {signed(b - d)}", linear_text(a + c, b - d)),
                    program=f"{w.LINEAR_PROGRAM}print(linear({a} + {signed(c)}, {b} - {d}))\n")
    return problem(f"Simplify {expression}.", linear_text(a + c, b - d), key=expression, expression=expression,
                   work=work)


@bank.skill(EXPR, "distributive-property", "Expand brackets with the distributive property", 6, "simplified")
def distributive_property(rng: random.Random) -> Problem | None:
    a, b = nonzero(rng, -9, 12), nonzero(rng, -15, 15)
    if a == 1:
        return None
    inner = f"x + {b}" if b > 0 else f"x - {-b}"
    expression = f"{a}({inner})" if a > 0 else f"-{-a}({inner})"
    text = rng.choice((f"Expand {expression}.", f"Use the distributive property to rewrite {expression}."))
    work = w.worked(w.step(f"{a} * {signed(b)}", a * b, "Multiply each term by the factor:"),
                    w.step(f"{a} * x + {signed(a * b)}", linear_text(a, a * b)),
                    program=f"{w.LINEAR_PROGRAM}print(linear({a}, {a} * {signed(b)}))\n")
    return problem(text, linear_text(a, a * b), key=expression, expression=expression, work=work)


PHRASES = (  # (words, canonical answer) of an expression in a number n
    ("{b} more than {a} times a number n", "{a}n+{b}"),
    ("{b} less than {a} times a number n", "{a}n-{b}"),
    ("{a} times the sum of a number n and {b}", "{a}(n+{b})"),
    ("the product of {a} and a number n, increased by {b}", "{a}n+{b}"),
    ("a number n divided by {a}, minus {b}", "n/{a}-{b}"),
)


@bank.skill(EXPR, "write-expressions", "Write an expression from words", 6, "expression")
def write_expressions(rng: random.Random) -> Problem | None:
    a, b = rng.randint(2, 12), rng.randint(1, 20)
    form = rng.randrange(len(PHRASES))
    words, answer = PHRASES[form]
    text = f"Write an expression for: {words.format(a=a, b=b)}."
    python = re.sub(r"(\d)([n(])", r"\1 * \2", answer.format(a=a, b=b)).replace("+", " + ").replace("-", " - ")
    work = w.worked(w.step(python.replace("/", " / "), answer.format(a=a, b=b), f"{words.format(a=a, b=b)}:"),
                    program=None, computational=False)  # translating words is not a computation
    return problem(text, answer.format(a=a, b=b), a=a, b=b, _form=form, work=work)


def _solved(x: int) -> str:
    return f"x={x}"


@bank.skill(EQ, "one-step-addition", "One-step equations with addition and subtraction", 6, "equation")
def one_step_addition(rng: random.Random) -> Problem | None:
    x, a = rng.randint(-20, 40), rng.randint(1, 30)
    equation, undo = rng.choice(((f"x + {a} = {x + a}", f"{x + a} - {a}"), (f"x - {a} = {x - a}", f"{x - a} + {a}"),
                                 (f"{a} + x = {x + a}", f"{x + a} - {a}")))
    return problem(f"Solve for x: {equation}.", _solved(x), key=equation, equation=equation,
                   work=w.worked(w.step(undo, _solved(x), "Undo the operation on x:")))


@bank.skill(EQ, "one-step-multiplication", "One-step equations with multiplication and division", 6, "equation")
def one_step_multiplication(rng: random.Random) -> Problem | None:
    x, a = nonzero(rng, -15, 20), rng.randint(2, 12)
    if rng.random() < 0.5:
        equation = f"{a}x = {a * x}"
    else:  # x/a = k has the solution a*k, so the shown k stays whole
        equation, x = f"x/{a} = {x}", a * x
    undo = f"{a * x} / {a}" if equation.startswith(f"{a}x") else f"{x // a} * {a}"
    return problem(f"Solve for x: {equation}.", _solved(x), key=equation, equation=equation,
                   work=w.worked(w.step(undo, _solved(x), "Undo the operation on x:")))


@bank.skill(EQ, "two-step-equations", "Two-step equations", 7, "equation")
def two_step_equations(rng: random.Random) -> Problem | None:
    x, a, b = rng.randint(-12, 20), rng.randint(2, 12), nonzero(rng, -25, 25)
    equation = f"{linear_text(a, b, spaced=True)} = {a * x + b}"
    work = w.worked(w.step(f"{a * x + b} - {signed(b)}", a * x, "Undo the constant:"),
                    w.step(f"{a * x} / {a}", _solved(x), "Divide by the coefficient:"))
    return problem(f"Solve for x: {equation}.", _solved(x), key=equation, equation=equation, work=work)


@bank.skill(EQ, "variables-on-both-sides", "Equations with variables on both sides", 8, "equation")
def variables_on_both_sides(rng: random.Random) -> Problem | None:
    x, a, c = rng.randint(-10, 15), rng.randint(2, 12), rng.randint(1, 11)
    b = nonzero(rng, -20, 20)
    if a == c:
        return None
    d = a * x + b - c * x
    equation = f"{linear_text(a, b, spaced=True)} = {linear_text(c, d, spaced=True)}"
    work = w.worked(w.step(f"{a} - {c}", a - c, "Collect the x terms on the left:"),
                    w.step(f"{d} - {signed(b)}", d - b, "Collect the numbers on the right:"),
                    w.step(f"{d - b} / {signed(a - c)}", _solved(x), "Divide by the coefficient:"))
    return problem(f"Solve for x: {equation}.", _solved(x), key=equation, equation=equation, work=work)


@bank.skill(EQ, "equations-with-brackets", "Equations with brackets", 8, "equation")
def equations_with_brackets(rng: random.Random) -> Problem | None:
    x, a, b = rng.randint(-10, 15), rng.randint(2, 9), nonzero(rng, -12, 12)
    equation = f"{a}({linear_text(1, b, spaced=True)}) = {a * (x + b)}"
    work = w.worked(w.step(f"{a * (x + b)} / {a}", x + b, "Divide both sides by the factor:"),
                    w.step(f"{x + b} - {signed(b)}", _solved(x), "Undo the constant:"))
    return problem(f"Solve for x: {equation}.", _solved(x), key=equation, equation=equation, work=work)


@bank.skill(EQ, "equation-word-problems", "Word problems with linear equations", 7, "integer")
def equation_word_problems(rng: random.Random) -> Problem | None:
    name, start, step, count = rng.choice(NAMES), rng.randint(5, 80), rng.randint(3, 25), rng.randint(2, 20)
    goal = start + step * count
    text = rng.choice((
        f"{name} has ${start} and saves ${step} each week. After how many weeks will {name} have ${goal}?",
        f"A taxi ride costs ${start} plus ${step} for each mile. A ride costs ${goal}. How many miles long was it?",
        f"A plant is {start} cm tall and grows {step} cm each week. After how many weeks will it be {goal} cm tall?"))
    work = w.worked(w.step(f"{goal} - {start}", goal - start, "What is still to come:"),
                    w.step(f"{goal - start} / {step}", count))
    return problem(text, str(count), start=start, step=step, goal=goal, work=work)
