"""KhanSkill domains "whole-numbers" (the four operations, word problems) and "negative-numbers" (integers)."""

from __future__ import annotations

import random

from ntkeval.data.khanskill.core import NAMES, THINGS, Problem, SkillBank, nonzero, problem
from ntkeval.data.khanskill.number_text import signed
from ntkeval.data.khanskill.work import compare_program, step, worked

bank = SkillBank()
WHOLE, NEG = "whole-numbers", "negative-numbers"


@bank.skill(WHOLE, "add-within-1000", "Add within 1000", 3, "integer")
def add_within_1000(rng: random.Random) -> Problem | None:
    a = rng.randint(100, 899)
    b = rng.randint(10, 1000 - a)
    text = rng.choice(("What is {a} + {b}?", "Add {a} and {b}.", "Find the sum of {a} and {b}."))
    return problem(text.format(a=a, b=b), str(a + b), key="+".join(map(str, sorted((a, b)))), a=a, b=b,
                   work=worked(step(f"{a} + {b}", a + b)))


@bank.skill(WHOLE, "subtract-within-1000", "Subtract within 1000", 3, "integer")
def subtract_within_1000(rng: random.Random) -> Problem | None:
    a = rng.randint(200, 999)
    b = rng.randint(10, a - 1)
    text = rng.choice(("What is {a} - {b}?", "Subtract {b} from {a}.", "Find the difference: {a} - {b}."))
    return problem(text.format(a=a, b=b), str(a - b), a=a, b=b, work=worked(step(f"{a} - {b}", a - b)))


@bank.skill(WHOLE, "add-three-numbers", "Add three two-digit numbers", 2, "integer")
def add_three_numbers(rng: random.Random) -> Problem | None:
    a, b, c = (rng.randint(10, 99) for _ in range(3))
    text = rng.choice(("What is {a} + {b} + {c}?", "Add {a}, {b} and {c}."))
    return problem(text.format(a=a, b=b, c=c), str(a + b + c), key="+".join(map(str, sorted((a, b, c)))),
                   a=a, b=b, c=c, work=worked(step(f"{a} + {b}", a + b), step(f"{a + b} + {c}", a + b + c)))


@bank.skill(WHOLE, "multiply-by-one-digit", "Multiply by a one-digit number", 4, "integer")
def multiply_by_one_digit(rng: random.Random) -> Problem | None:
    a, b = rng.randint(12, 999), rng.randint(2, 9)
    text = rng.choice(("What is {a} × {b}?", "Multiply {a} by {b}.", "Find the product of {a} and {b}."))
    return problem(text.format(a=a, b=b), str(a * b), a=a, b=b, work=worked(step(f"{a} * {b}", a * b)))


@bank.skill(WHOLE, "multiply-two-digit", "Multiply two-digit numbers", 5, "integer")
def multiply_two_digit(rng: random.Random) -> Problem | None:
    a, b = rng.randint(11, 99), rng.randint(11, 99)
    text = rng.choice(("What is {a} × {b}?", "Multiply {a} by {b}."))
    tens, ones = b // 10 * 10, b % 10  # partial products, as on paper
    work = worked(step(f"{a} * {tens}", a * tens), step(f"{a} * {ones}", a * ones),
                  step(f"{a * tens} + {a * ones}", a * b))
    return problem(text.format(a=a, b=b), str(a * b), key="*".join(map(str, sorted((a, b)))), a=a, b=b, work=work)


@bank.skill(WHOLE, "divide-by-one-digit", "Divide by a one-digit number", 4, "integer")
def divide_by_one_digit(rng: random.Random) -> Problem | None:
    divisor, quotient = rng.randint(2, 9), rng.randint(11, 199)  # the dividend is exact by construction
    n = divisor * quotient
    text = rng.choice(("What is {n} ÷ {d}?", "Divide {n} by {d}."))
    return problem(text.format(n=n, d=divisor), str(quotient), n=n, d=divisor,
                   work=worked(step(f"{n} / {divisor}", quotient)))


@bank.skill(WHOLE, "division-remainder", "Find the remainder of a division", 4, "integer")
def division_remainder(rng: random.Random) -> Problem | None:
    d = rng.randint(3, 9)
    n = d * rng.randint(5, 99) + rng.randint(1, d - 1)
    return problem(f"What is the remainder when {n} is divided by {d}?", str(n % d), n=n, d=d,
                   work=worked(step(f"{n} // {d}", n // d), step(f"{n} - {d} * {n // d}", n % d)))


@bank.skill(WHOLE, "two-step-word-problem", "Two-step word problems", 3, "integer")
def two_step_word_problem(rng: random.Random) -> Problem | None:
    name, things = rng.choice(NAMES), rng.choice(THINGS)
    a, b, c = rng.randint(5, 60), rng.randint(2, 9), rng.randint(2, 12)
    if rng.random() < 0.5:
        text = (f"{name} has {a} {things}. {name} buys {b} packs with {c} {things} in each pack. "
                f"How many {things} does {name} have now?")
        return problem(text, str(a + b * c), a=a, b=b, c=c, _op="gain",
                       work=worked(step(f"{b} * {c}", b * c), step(f"{a} + {b * c}", a + b * c)))
    if a <= b * c:
        return None  # nobody can give away more than they have
    text = (f"{name} has {a} {things} and gives {b} friends {c} {things} each. "
            f"How many {things} does {name} have left?")
    return problem(text, str(a - b * c), a=a, b=b, c=c, _op="give",
                   work=worked(step(f"{b} * {c}", b * c), step(f"{a} - {b * c}", a - b * c)))


@bank.skill(NEG, "add-integers", "Add positive and negative numbers", 7, "integer")
def add_integers(rng: random.Random) -> Problem | None:
    a, b = nonzero(rng, -30, 30), nonzero(rng, -30, 30)
    if a > 0 and b > 0:
        return None
    return problem(f"What is {a} + {signed(b)}?", str(a + b), a=a, b=b, work=worked(step(f"{a} + {signed(b)}", a + b)))


@bank.skill(NEG, "subtract-integers", "Subtract positive and negative numbers", 7, "integer")
def subtract_integers(rng: random.Random) -> Problem | None:
    a, b = nonzero(rng, -30, 30), nonzero(rng, -30, 30)
    if a > 0 and b > 0:
        return None
    return problem(f"What is {a} - {signed(b)}?", str(a - b), a=a, b=b, work=worked(step(f"{a} - {signed(b)}", a - b)))


@bank.skill(NEG, "multiply-integers", "Multiply positive and negative numbers", 7, "integer")
def multiply_integers(rng: random.Random) -> Problem | None:
    a, b = nonzero(rng, -15, 15), nonzero(rng, -12, 12)
    if (a > 0 and b > 0) or abs(a) == 1 or abs(b) == 1:
        return None
    return problem(f"What is {a} × {signed(b)}?", str(a * b), a=a, b=b, work=worked(step(f"{a} * {signed(b)}", a * b)))


@bank.skill(NEG, "divide-integers", "Divide positive and negative numbers", 7, "integer")
def divide_integers(rng: random.Random) -> Problem | None:
    divisor, quotient = nonzero(rng, -12, 12), nonzero(rng, -15, 15)
    n = divisor * quotient
    if (divisor > 0 and quotient > 0) or abs(divisor) == 1:
        return None
    return problem(f"What is {n} ÷ {signed(divisor)}?", str(quotient), n=n, d=divisor,
                   work=worked(step(f"{n} / {signed(divisor)}", quotient)))


@bank.skill(NEG, "compare-integers", "Compare positive and negative numbers", 6, "text", ("<", ">", "="))
def compare_integers(rng: random.Random) -> Problem | None:
    a, b = rng.randint(-50, 50), rng.randint(-50, 50)
    if a == b or (a >= 0 and b >= 0):
        return None
    answer = "<" if a < b else ">"
    work = worked(step(f"{a} - {signed(b)}", a - b, "The difference tells the order:"),
                  step(f"{a} {answer} {b}", answer), program=compare_program(str(a), str(b)), computational=False)
    return problem(f"Which symbol goes in the blank: {a} _ {b}? Answer <, >, or =.", answer, a=a, b=b, work=work)


@bank.skill(NEG, "number-line-distance", "Distance between numbers on a number line", 6, "integer")
def number_line_distance(rng: random.Random) -> Problem | None:
    a, b = rng.randint(-40, 40), rng.randint(-40, 40)
    if a == b or (a > 0 and b > 0):
        return None
    return problem(f"How far apart are {a} and {b} on a number line?", str(abs(a - b)),
                   key=",".join(map(str, sorted((a, b)))), a=a, b=b,
                   work=worked(step(f"abs({a} - {signed(b)})", abs(a - b))))


@bank.skill(NEG, "temperature-change", "Temperature changes below zero", 6, "integer")
def temperature_change(rng: random.Random) -> Problem | None:
    start, change = rng.randint(-20, 15), rng.randint(3, 30)
    if rng.random() < 0.5:
        if start >= 0:
            return None
        text = (f"At dawn the temperature was {start}°C. By noon it had risen by {change} degrees. "
                "What was the temperature at noon, in °C?")
        return problem(text, str(start + change), t=start, d=change, _op="rise",
                       work=worked(step(f"{start} + {change}", start + change)))
    if start - change >= 0:
        return None  # the skill is about crossing below zero
    text = (f"At 6 pm the temperature was {start}°C. By midnight it had fallen by {change} degrees. "
            "What was the temperature at midnight, in °C?")
    return problem(text, str(start - change), t=start, d=change, _op="fall",
                   work=worked(step(f"{start} - {change}", start - change)))
