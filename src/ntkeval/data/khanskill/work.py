"""Worked solutions of KhanSkill problems: the steps a generator computes beside its answer, and the program built
from them (each line one step, exact arithmetic, the answer printed as the skill writes it).

    work = worked(step("179 + 111", 290))   # one Step per computation, in order; the last value is the answer
    build_program(work.steps, "290")        # 'step1 = 179 + 111\\nprint(step1)'
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ntkeval.data.khanskill.number_text import shown, signed
from ntkeval.formats.base import Step

AUTO = "auto"  # Work.program: build the program from the steps (None: this skill has no program)
MATH_FUNCTIONS = ("gcd", "lcm", "isqrt")  # calls a step may make from math (besides abs, min, max, sum, len, sorted)


@dataclass(frozen=True)
class Work:
    steps: tuple[Step, ...]
    program: str | None = AUTO  # explicit source, AUTO, or None
    computational: bool = True  # numeric computation (pot is natural) rather than comparing or naming


def step(expression: str, value: int | Fraction | Decimal | str, text: str = "") -> Step:
    """One computation and its result, the result written as answers are (12, 3/4, 0.25)."""
    return Step(expression, value if isinstance(value, str) else shown(value), text)


def worked(*steps: Step, program: str | None = AUTO, computational: bool = True) -> Work:
    return Work(tuple(steps), program, computational)


class _Exact(ast.NodeTransformer):
    """Rewrites a step so Python computes it exactly: decimals and divisions become Fractions."""

    def __init__(self):
        self.names: set[str] = set()

    def visit_Constant(self, node):
        if isinstance(node.value, float):
            return ast.Call(ast.Name("Fraction"), [ast.Constant(repr(node.value))], [])
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        negative_power = isinstance(node.op, ast.Pow) and isinstance(node.right, ast.UnaryOp)
        if isinstance(node.op, ast.Div) or negative_power:
            node.left = ast.Call(ast.Name("Fraction"), [node.left], [])
        return node

    def visit_Name(self, node):
        self.names.add(node.id)
        return node


def _python(expression: str) -> tuple[str, set[str]] | None:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    exact = _Exact()
    before = ast.dump(tree)
    tree = ast.fix_missing_locations(exact.visit(tree))
    return (expression if ast.dump(tree) == before else ast.unparse(tree)), exact.names  # as written if exact


def _printing(name: str, answer: str) -> list[str] | None:
    """The lines that print variable `name` exactly as `answer` is written (None: a form we cannot print)."""
    if re.fullmatch(r"-?\d+(/\d+)?", answer):
        return [f"print({name})"]
    if re.fullmatch(r"\d+ \d+/\d+", answer):
        return [f"whole = {name}.numerator // {name}.denominator", f'print(f"{{whole}} {{{name} - whole}}")']
    if match := re.fullmatch(r"([a-z])=-?\d+", answer):  # a solved equation, x=5
        return [f'print(f"{match.group(1)}={{{name}}}")']
    if match := re.fullmatch(r"-?\d+(?:\.(\d+))?(%?)", answer):
        places, percent = len(match.group(1) or ""), match.group(2)
        return [f'print(f"{{float({name}):.{places}f}}{percent}")']
    return None


def build_program(steps: tuple[Step, ...], answer: str) -> str | None:
    """A program computing the steps in order and printing the answer, or None when a step is not Python
    arithmetic or the answer is not a number (such skills write their own program, or have none)."""
    lines, names = [], set()
    for index, one in enumerate(steps, 1):
        if (python := _python(one.expression)) is None:
            return None
        lines.append(f"step{index} = {python[0]}")
        names |= python[1] | ({"Fraction"} if "Fraction(" in python[0] else set())
    if not lines or names - {"Fraction", "abs", "min", "max", "sum", "len", "sorted", *MATH_FUNCTIONS}:
        return None
    if (printing := _printing(f"step{len(lines)}", answer)) is None:
        return None
    imports = [f"from math import {', '.join(sorted(names & set(MATH_FUNCTIONS)))}"] if names & set(
        MATH_FUNCTIONS) else []
    if "Fraction" in names:
        imports.insert(0, "from fractions import Fraction")
    return "\n".join(imports + lines + printing) + "\n"


LINEAR_PROGRAM = """def linear(a, b):
    term = {1: "x", -1: "-x"}.get(a, f"{a}x")
    return term if b == 0 else f"{term}{b:+d}"
"""  # how linear_text writes ax+b, for programs that print one


def compare_program(left: str, right: str) -> str:
    """The program of a comparison skill: which symbol goes between two Python values."""
    return f'left, right = {left}, {right}\nprint("<" if left < right else ">" if left > right else "=")\n'


_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_APPLY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.Pow: lambda a, b: a ** int(b)}


def operation_steps(expression: str) -> tuple[Step, ...]:
    """One step per operation of a written expression (×, ÷, ^, square brackets allowed), in the order the order of
    operations does them: "12 ÷ 2 + 3 × 2" -> 12 / 2 = 6, 3 * 2 = 6, 6 + 6 = 12."""
    python = expression.translate(str.maketrans({"×": "*", "÷": "/", "[": "(", "]": ")"})).replace("^", "**")
    steps: list[Step] = []

    def value(node: ast.expr) -> Fraction:
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if not isinstance(node, ast.BinOp) or type(node.op) not in _SYMBOLS:
            raise ValueError(f"not an operation of the order of operations: {ast.unparse(node)}")
        left, right = value(node.left), value(node.right)
        result = _APPLY[type(node.op)](left, right)
        steps.append(Step(f"{signed(left)} {_SYMBOLS[type(node.op)]} {signed(right)}", shown(result)))
        return result

    value(ast.parse(python, mode="eval").body)
    return tuple(steps)
