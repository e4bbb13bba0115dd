"""How KhanSkill writes numbers: in questions (12, -3, 3/4, 0.25), after an operator (5 - (-3)) and as exact decimals;
shared by the generators (core) and the worked solutions (work), so both write a number the same way."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction


def shown(value: int | Fraction | Decimal) -> str:
    """A number as a question writes it: 12, -3, 3/4, 0.25."""
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if isinstance(value, Decimal):
        return decimal_text(value)
    return str(value)


def signed(value: int | Fraction | Decimal) -> str:
    """A number after an operator: negatives in brackets, as in 5 - (-3)."""
    return f"({shown(value)})" if value < 0 else shown(value)


def decimal_text(value: Fraction | Decimal | int, places: int | None = None) -> str:
    """An exact decimal, without trailing zeros unless `places` asks for them (money: 2)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else Decimal(value)
    if isinstance(value, Fraction) and Fraction(exact) != value:
        raise ValueError(f"{value} has no finite decimal form")
    if places is not None:
        text = f"{exact:.{places}f}"
        if Decimal(text) != exact:
            raise ValueError(f"{value} needs more than {places} decimal places")
        return text
    text = format(exact.normalize(), "f")
    return "0" if text in ("-0", "0") else text
