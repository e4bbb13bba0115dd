"""KhanSkill domain "decimals": the four operations on decimals, powers of ten, comparing, and money."""

from __future__ import annotations

import random
from decimal import Decimal

from ntkeval.data.khanskill.core import NAMES, Problem, SkillBank, money, problem
from ntkeval.data.khanskill.number_text import decimal_text
from ntkeval.data.khanskill.work import compare_program, step, worked

bank = SkillBank()
DEC = "decimals"
GOODS = (("pen", "pens"), ("muffin", "muffins"), ("ticket", "tickets"), ("notebook", "notebooks"),
         ("bottle of juice", "bottles of juice"), ("bag of rice", "bags of rice"))


def decimal_number(rng: random.Random, low: int, high: int, places: int) -> Decimal:
    """A decimal with exactly `places` decimals (the last one nonzero) from low/10^places to high/10^places."""
    while (k := rng.randint(low, high)) % 10 == 0:
        pass
    return Decimal(k).scaleb(-places)


def _pair_key(a: Decimal, b: Decimal, op: str) -> str:
    return op.join(sorted((str(a), str(b))))


@bank.skill(DEC, "add-decimals", "Add decimals", 5, "decimal")
def add_decimals(rng: random.Random) -> Problem | None:
    a, b = (decimal_number(rng, 11, 9999, rng.choice((1, 2))) for _ in range(2))
    text = rng.choice(("What is {a} + {b}?", "Add {a} and {b}."))
    return problem(text.format(a=a, b=b), decimal_text(a + b), key=_pair_key(a, b, "+"), a=a, b=b,
                   work=worked(step(f"{a} + {b}", a + b)))


@bank.skill(DEC, "subtract-decimals", "Subtract decimals", 5, "decimal")
def subtract_decimals(rng: random.Random) -> Problem | None:
    a, b = (decimal_number(rng, 11, 9999, rng.choice((1, 2))) for _ in range(2))
    if a <= b:
        return None
    text = rng.choice(("What is {a} - {b}?", "Subtract {b} from {a}."))
    return problem(text.format(a=a, b=b), decimal_text(a - b), a=a, b=b, work=worked(step(f"{a} - {b}", a - b)))


@bank.skill(DEC, "multiply-decimal-by-whole", "Multiply a decimal by a whole number", 5, "decimal")
def multiply_decimal_by_whole(rng: random.Random) -> Problem | None:
    a, b = decimal_number(rng, 11, 999, rng.choice((1, 2))), rng.randint(2, 9)
    return problem(f"What is {a} × {b}?", decimal_text(a * b), a=a, b=b, work=worked(step(f"{a} * {b}", a * b)))


@bank.skill(DEC, "multiply-decimals", "Multiply decimals", 6, "decimal")
def multiply_decimals(rng: random.Random) -> Problem | None:
    a, b = decimal_number(rng, 2, 99, 1), decimal_number(rng, 2, 99, rng.choice((1, 2)))
    return problem(f"What is {a} × {b}?", decimal_text(a * b), key=_pair_key(a, b, "*"), a=a, b=b,
                   work=worked(step(f"{a} * {b}", a * b)))


@bank.skill(DEC, "divide-decimal-by-whole", "Divide a decimal by a whole number", 6, "decimal")
def divide_decimal_by_whole(rng: random.Random) -> Problem | None:
    divisor, quotient = rng.randint(2, 9), decimal_number(rng, 11, 999, 2)  # exact by construction
    n = quotient * divisor
    if n == n.to_integral_value():
        return None  # a whole dividend is another skill
    return problem(f"What is {decimal_text(n)} ÷ {divisor}?", decimal_text(quotient), n=n, d=divisor,
                   work=worked(step(f"{decimal_text(n)} / {divisor}", quotient)))


@bank.skill(DEC, "multiply-by-power-of-ten", "Multiply and divide by 10, 100 and 1000", 5, "decimal")
def multiply_by_power_of_ten(rng: random.Random) -> Problem | None:
    a, power = decimal_number(rng, 11, 9999, rng.choice((1, 2, 3))), 10 ** rng.randint(1, 3)
    if rng.random() < 0.5:
        return problem(f"What is {a} × {power}?", decimal_text(a * power), a=a, p=power, _op="*",
                       work=worked(step(f"{a} * {power}", a * power)))
    return problem(f"What is {a} ÷ {power}?", decimal_text(a / power), a=a, p=power, _op="/",
                   work=worked(step(f"{a} / {power}", a / power)))


@bank.skill(DEC, "compare-decimals", "Compare decimals", 4, "text", ("<", ">", "="))
def compare_decimals(rng: random.Random) -> Problem | None:
    a = decimal_number(rng, 1, 999, rng.choice((1, 2, 3)))
    if rng.random() < 0.15:
        b = Decimal(f"{a}0")  # 0.5 and 0.50: equal values written differently
    else:  # the same leading digits with another length is what makes comparing decimals hard
        b = decimal_number(rng, 1, 999, rng.choice((1, 2, 3)))
        if b == a or str(a)[:3] != str(b)[:3] and rng.random() < 0.7:
            return None
    answer = "<" if a < b else ">" if a > b else "="
    work = worked(step(f"{a} - {b}", a - b, "The difference tells the order:"), step(f"{a} {answer} {b}", answer),
                  program=compare_program(str(a), str(b)), computational=False)
    return problem(f"Which symbol goes in the blank: {a} _ {b}? Answer <, >, or =.", answer,
                   key=f"{a}_{b}", a=a, b=b, work=work)


@bank.skill(DEC, "money-total", "Total cost of several items", 4, "decimal")
def money_total(rng: random.Random) -> Problem | None:
    count, price = rng.randint(2, 9), Decimal(rng.randint(25, 1999)) / 100
    name, (one, many) = rng.choice(NAMES), rng.choice(GOODS)
    text = rng.choice((f"{name} buys {count} {many} at ${price:.2f} each. How much does {name} spend, in dollars?",
                       f"One {one} costs ${price:.2f}. How many dollars do {count} {many} cost?"))
    return problem(text, money(count * price), count=count, price=price,
                   work=worked(step(f"{count} * {price:.2f}", money(count * price))))
