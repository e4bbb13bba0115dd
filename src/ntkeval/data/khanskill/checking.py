"""An exact checker of written arithmetic steps ("41 + 55 = 96"): each side evaluated with Fractions (sympy where a
step has a variable or pi), so process supervision on KhanSkill needs no model and no floating point.

    step_is_true("3/4 + 1/8 = 7/8")   # True
    value_of("2 1/3")                 # Fraction(7, 3)
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

import sympy

from ntkeval.data.answer_kinds import parse

_FUNCTIONS = {"gcd": math.gcd, "lcm": math.lcm, "isqrt": math.isqrt, "abs": abs, "min": min, "max": max,
              "sum": sum, "len": len, "sorted": lambda values: tuple(sorted(values))}
_ON_ONE_TUPLE = ("sum", "len", "sorted")  # these take one tuple of numbers
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}
_TYPOGRAPHY = {"×": "*", "÷": "/", "−": "-", "–": "-", "·": "*", "^": "**"}
_ENUMERATOR = re.compile(r"^\s*(?:[-*•]|(?:step\s*)?\d+\s*[.):])\s+", re.IGNORECASE)
_WORDS = re.compile(r"^\s*(?:(?:[A-Za-z][A-Za-z'’,;]+|a|A)\s+)+(?=[-+(\d.])")  # words before a step: "Sum of"
Value = Fraction | tuple | sympy.Expr


class _NotArithmetic(Exception):
    """The text is not arithmetic this checker evaluates exactly (it may still be algebra, for sympy)."""


def _root(value: Fraction, degree: int) -> Fraction:
    """The exact whole-number root of a perfect square or cube; anything else is not exact arithmetic."""
    if value.denominator != 1 or value > 10**18:
        raise _NotArithmetic
    root = round(float(value) ** (1 / degree))
    for candidate in (root - 1, root, root + 1):
        if candidate >= 0 and candidate**degree == value:
            return Fraction(candidate)
    raise _NotArithmetic


def _exact(node: ast.AST) -> Fraction | tuple:
    """Exact value of a whitelisted expression tree; model text is untrusted, so sizes are bounded."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        if isinstance(node.value, int) and abs(node.value) > 10**40:
            raise _NotArithmetic
        return Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.Tuple):
        return tuple(_exact(item) for item in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _exact(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, power = _exact(node.left), _exact(node.right)
        if power.numerator == 1 and power.denominator in (2, 3) and base >= 0:  # an exact root, 39304 ** (1/3)
            return _root(base, power.denominator)
        if power.denominator != 1 or abs(power) > 64 or abs(base) > 10**12 or (base == 0 and power < 0):
            raise _NotArithmetic
        return base ** int(power)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _exact(node.left), _exact(node.right)
        division = isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod))
        if isinstance(left, tuple) or isinstance(right, tuple) or (division and right == 0):
            raise _NotArithmetic
        return _OPS[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and len(node.args) <= 8):
        args = [_exact(arg) for arg in node.args]
        name = node.func.id
        if name in _ON_ONE_TUPLE:
            if len(args) != 1 or not isinstance(args[0], tuple) or any(isinstance(a, tuple) for a in args[0]):
                raise _NotArithmetic
            result = _FUNCTIONS[name](args[0])
            return result if isinstance(result, tuple) else Fraction(result)
        if any(isinstance(a, tuple) for a in args) or (name in ("gcd", "lcm", "isqrt") and any(
                a.denominator != 1 or abs(a) > 10**18 for a in args)):
            raise _NotArithmetic
        integers = [int(a) for a in args] if name in ("gcd", "lcm", "isqrt") else args
        return Fraction(_FUNCTIONS[name](*integers))
    raise _NotArithmetic


def evaluate(text: str) -> Value | None:
    """The exact value of Python-readable arithmetic (a tuple for a point), sympy for algebra; None: unreadable."""
    cleaned = text.strip()
    for old, new in _TYPOGRAPHY.items():
        cleaned = cleaned.replace(old, new)
    if len(cleaned) > 300:
        return None
    try:
        return _exact(ast.parse(cleaned, mode="eval").body)
    except (SyntaxError, _NotArithmetic, ValueError, TypeError, ZeroDivisionError, RecursionError, MemoryError):
        pass
    return parse(text)  # algebra and pi: sympy, with answer_kinds' guards on what reaches it


def value_of(text: str) -> Value | None:
    """The value a step or an answer writes: 12, -3/4, 2 1/3, 0.25, 45%, x=5, 3:4, (2, -1), 58π, 8x+7."""
    text = text.strip().rstrip(".").strip().removeprefix("$")
    if text.endswith("%"):
        text = text[:-1]  # a percent step computes the number of percent
    if match := re.fullmatch(r"[A-Za-z]\s*=\s*(.+)", text):
        text = match.group(1)
    if match := re.fullmatch(r"(-?\d+)\s*:\s*(\d+)", text):
        return (Fraction(int(match.group(1))), Fraction(int(match.group(2))))
    if match := re.fullmatch(r"(-?)(\d+) (\d+)/(\d+)", text):
        whole = int(match.group(2)) + Fraction(int(match.group(3)), int(match.group(4)))
        return -whole if match.group(1) else whole
    return evaluate(text)


def same(a: Value | None, b: Value | None) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    try:
        return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0
    except (sympy.SympifyError, TypeError):
        return False


def split_step(written: str) -> tuple[str, str] | None:
    """(expression, value) of a written step: an optional number or label ("2.", "Step 2:", "Add them: ", words
    before the first number) and `expression = value`, split at the first "="; None when the line has no "="."""
    line = _ENUMERATOR.sub("", written.strip().removeprefix("<<").removesuffix(">>"))
    if "=" not in line:
        return None
    expression, value = line.split("=", 1)
    if ": " in expression:
        expression = expression.rsplit(": ", 1)[1]
    return _WORDS.sub("", expression).strip(), value.strip()


def step_is_true(written: str) -> bool:
    parts = split_step(written)
    return parts is not None and same(evaluate(parts[0]), value_of(parts[1]))
