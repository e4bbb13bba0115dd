"""KhanSkill domains "exponents" (powers, roots, exponent rules, scientific notation) and "order-of-operations"."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

from ntkeval.data.khanskill.core import Problem, SkillBank, fraction_text, problem
from ntkeval.data.khanskill.number_text import decimal_text
from ntkeval.data.khanskill.work import Work, operation_steps, step, worked

bank = SkillBank()
EXP, OOO = "exponents", "order-of-operations"


@bank.skill(EXP, "evaluate-powers", "Evaluate powers", 6, "integer")
def evaluate_powers(rng: random.Random) -> Problem | None:
    base, exponent = rng.choice((-1, 1)) * rng.randint(2, 15), rng.randint(2, 12)
    if abs(base) ** exponent > 50_000:
        return None
    shown_base = f"({base})" if base < 0 else str(base)
    text = rng.choice(("What is {b}^{e}?", "What is {b} to the power of {e}?"))
    return problem(text.format(b=shown_base, e=exponent), str(base**exponent), base=base, exponent=exponent,
                   work=worked(step(f"{shown_base} ** {exponent}", base**exponent)))


@bank.skill(EXP, "square-roots", "Square roots of perfect squares", 8, "integer")
def square_roots(rng: random.Random) -> Problem | None:
    root = rng.randint(2, 80)
    text = rng.choice(("What is √{n}?", "What is the square root of {n}?"))
    return problem(text.format(n=root * root), str(root), n=root * root,
                   work=worked(step(f"isqrt({root * root})", root, "The whole number whose square it is:")))


@bank.skill(EXP, "multiply-powers", "Multiply powers with the same base", 8, "expression")
def multiply_powers(rng: random.Random) -> Problem | None:
    base, m, n = rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 9)
    return problem(f"Write {base}^{m} × {base}^{n} as a single power of {base}.", f"{base}^{m + n}",
                   key=f"{base}:{min(m, n)},{max(m, n)}", base=base, m=m, n=n, work=_exponent_rule(base, m, n, "+"))


def _exponent_rule(base: int, m: int, n: int, op: str) -> Work:
    """Same base: add the exponents of a product, multiply those of a power of a power."""
    exponent = m + n if op == "+" else m * n
    return worked(step(f"{m} {op} {n}", exponent, "Add the exponents:" if op == "+" else "Multiply the exponents:"),
                  step(f"{base} ** {exponent}", f"{base}^{exponent}"),
                  program=f'print(f"{base}^{{{m} {op} {n}}}")\n')


@bank.skill(EXP, "power-of-a-power", "Raise a power to a power", 8, "expression")
def power_of_a_power(rng: random.Random) -> Problem | None:
    base, m, n = rng.randint(2, 12), rng.randint(2, 6), rng.randint(2, 6)
    return problem(f"Write ({base}^{m})^{n} as a single power of {base}.", f"{base}^{m * n}", base=base, m=m, n=n,
                   work=_exponent_rule(base, m, n, "*"))


@bank.skill(EXP, "negative-exponents", "Negative exponents", 8, "fraction")
def negative_exponents(rng: random.Random) -> Problem | None:
    coefficient, base, exponent = rng.randint(1, 12), rng.randint(2, 10), rng.randint(1, 4)
    if base**exponent > 10_000:
        return None
    power = f"{base}^(-{exponent})"
    text = f"What is {power}?" if coefficient == 1 else f"What is {coefficient} × {power}?"
    shown_coefficient = {"c": coefficient} if coefficient != 1 else {}  # 1 × 2^(-3) is written 2^(-3)
    work = worked(step(f"{base} ** {exponent}", base**exponent, "A negative exponent divides:"),
                  step(f"{coefficient} / {base**exponent}", fraction_text(Fraction(coefficient, base**exponent))))
    return problem(text, fraction_text(Fraction(coefficient, base**exponent)), base=base, exponent=-exponent,
                   **shown_coefficient, work=work)


@bank.skill(EXP, "scientific-to-standard", "Write scientific notation in standard form", 8, "decimal")
def scientific_to_standard(rng: random.Random) -> Problem | None:
    places = rng.choice((1, 2))
    while (k := rng.randint(10**places + 1, 10 ** (places + 1) - 1)) % 10 == 0:
        pass
    mantissa, exponent = Decimal(k).scaleb(-places), rng.choice((-5, -4, -3, -2, -1, 2, 3, 4, 5, 6))
    power = f"({exponent})" if exponent < 0 else str(exponent)
    return problem(f"Write {mantissa} × 10^{exponent} in standard form.",
                   decimal_text(mantissa.scaleb(exponent)), m=mantissa, exponent=exponent,
                   work=worked(step(f"{mantissa} * 10 ** {power}", decimal_text(mantissa.scaleb(exponent)))))


Formula = Callable[..., Fraction]
OPERATIONS: dict[str, tuple[tuple[str, Formula], ...]] = {  # (how it is written, the same arithmetic in Python)
    "two-operations": (
        ("{a} + {b} × {c}", lambda a, b, c: a + b * c),
        ("{a} × {b} - {c}", lambda a, b, c: a * b - c),
        ("{a} - {b} × {c}", lambda a, b, c: a - b * c),
        ("{a} + {b} ÷ {c}", lambda a, b, c: a + b / c),
        ("{a} ÷ {b} + {c} × {d}", lambda a, b, c, d: a / b + c * d)),
    "parentheses": (
        ("({a} + {b}) × {c}", lambda a, b, c: (a + b) * c),
        ("{a} × ({b} - {c})", lambda a, b, c: a * (b - c)),
        ("({a} + {b}) ÷ {c}", lambda a, b, c: (a + b) / c),
        ("{a} - ({b} + {c})", lambda a, b, c: a - (b + c)),
        ("({a} - {b}) × ({c} + {d})", lambda a, b, c, d: (a - b) * (c + d))),
    "with-exponents": (
        ("{a} + {b}^2 × {c}", lambda a, b, c: a + b**2 * c),
        ("({a} + {b})^2 - {c}", lambda a, b, c: (a + b) ** 2 - c),
        ("{a}^2 - {b} × {c}", lambda a, b, c: a**2 - b * c),
        ("{a} × {b}^3 + {c}", lambda a, b, c: a * b**3 + c),
        ("({a} - {b})^2 ÷ {c}", lambda a, b, c: (a - b) ** 2 / c)),
    "multi-step": (
        ("{a} × {b} - {c} ÷ {d} + {e}", lambda a, b, c, d, e: a * b - c / d + e),
        ("[{a} + ({b} - {c})] × {d}", lambda a, b, c, d: (a + (b - c)) * d),
        ("{a} + {b} × ({c} - {d}) ÷ {e}", lambda a, b, c, d, e: a + b * (c - d) / e),
        ("({a} + {b} × {c}) ÷ {d} - {e}", lambda a, b, c, d, e: (a + b * c) / d - e)),
}
TITLES = {"two-operations": ("Order of operations without parentheses", 5),
          "parentheses": ("Order of operations with parentheses", 5),
          "with-exponents": ("Order of operations with exponents", 6),
          "multi-step": ("Order of operations in several steps", 6)}


def _operations_generator(patterns: tuple[tuple[str, Formula], ...]):
    def generate(rng: random.Random) -> Problem | None:
        pattern, formula = rng.choice(patterns)
        names = [c for c in "abcde" if "{" + c + "}" in pattern]
        values = {name: rng.randint(1, 12) for name in names}
        value = formula(*(Fraction(values[n]) for n in names))
        if value.denominator != 1 or not 0 <= value <= 2000:
            return None  # every step stays whole and the result a modest whole number
        expression = pattern.format(**values)
        text = rng.choice(("What is {e}?", "Evaluate {e}.", "Find the value of {e}."))
        return problem(text.format(e=expression), str(value.numerator), key=expression, expression=expression,
                       **values, work=worked(*operation_steps(expression)))
    return generate


for _name, _patterns in OPERATIONS.items():
    bank.skill(OOO, _name, *TITLES[_name], "integer")(_operations_generator(_patterns))
