"""Worked solutions of arith problems, read off their expression trees: one step per operation in evaluation order,
a program, a wrong solution of the same shape for the tune-base control, the backward (FOBAR) rewriting of a
problem, and an exact checker of written steps (process supervision).

    steps_of(tree_of("(12+7)*3"))   # [Step("12 + 7", "19"), Step("19 * 3", "57")]
    program_of(tree_of("(12+7)*3"))  # "x1 = 12 + 7\\nx2 = x1 * 3\\nprint(x2)"
    inverted(tree_of("(12+7)*3"), 1, 57)  # the tree of 57 / 3 - 12: solving (12 + x) * 3 = 57 for x
"""

from __future__ import annotations

import ast
import random
import re

from ntkeval.formats.base import Solution, Step

Tree = int | tuple[str, "Tree", "Tree"]  # a number, or (operator, left, right) with operator in + - * /
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_EQUATION = re.compile(r"([-+*/()\d\s]*\d[-+*/()\d\s]*)=\s*(-?\d+)(?![\d.])")


def tree_of(expression: str) -> Tree:
    """The tree of an expression of non-negative ints, + - * / and brackets."""
    def build(node: ast.AST) -> Tree:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)], build(node.left), build(node.right)
        raise ValueError(f"unsupported syntax in {expression!r}")
    return build(ast.parse(expression, mode="eval").body)


def value(tree: Tree) -> int:
    """The exact value (every division of arith is exact by construction; an inexact one raises)."""
    if isinstance(tree, int):
        return tree
    op, left, right = tree
    a, b = value(left), value(right)
    if op == "/":
        if b == 0 or a % b:
            raise ValueError(f"inexact division {a}/{b}")
        return a // b
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def text_of(tree: Tree) -> str:
    """The tree as an expression with every operation bracketed except the outermost."""
    def inner(t: Tree) -> str:
        return str(t) if isinstance(t, int) else f"({text_of(t)})"
    return str(tree) if isinstance(tree, int) else f"{inner(tree[1])}{tree[0]}{inner(tree[2])}"


def leaf_count(tree: Tree) -> int:
    return 1 if isinstance(tree, int) else leaf_count(tree[1]) + leaf_count(tree[2])


def _operations(tree: Tree) -> list[tuple[str, Tree, Tree]]:
    """The operations in evaluation order (post-order: left before right, children before parents)."""
    return [] if isinstance(tree, int) else [*_operations(tree[1]), *_operations(tree[2]), tree]


def steps_of(tree: Tree) -> tuple[Step, ...]:
    """One step per operation, in evaluation order, with the values of its operands written as numbers."""
    return tuple(Step(f"{value(left)} {op} {value(right)}", str(value((op, left, right))))
                 for op, left, right in _operations(tree))


def program_of(tree: Tree) -> str:
    """A Python program computing the tree one operation per line (exact division as //) and printing the result."""
    lines: list[str] = []

    def operand(t: Tree) -> str:  # post-order, like steps_of: line i is step i
        if isinstance(t, int):
            return str(t)
        op, left, right = t
        a, b = operand(left), operand(right)
        lines.append(f"x{len(lines) + 1} = {a} {'//' if op == '/' else op} {b}")
        return f"x{len(lines)}"

    result = operand(tree)  # fills `lines` first
    return "\n".join([*lines, f"print({result})"])


def random_tree(tree: Tree, target: int, rng: random.Random, top: int = 99) -> Tree:
    """A tree of the same shape whose every number is drawn at random so that it evaluates to `target` (the wrong
    solutions of tune-base: same form, wrong content, still true arithmetic step by step)."""
    if isinstance(tree, int):
        return target
    op, left, right = tree
    if op == "+":
        a = rng.randint(min(0, target), max(0, target))
        b = target - a
    elif op == "-":
        b = rng.randint(1, top)
        a = target + b
    elif op == "*":
        divisors = [d for d in range(2, min(abs(target), 9) + 1) if target % d == 0] or [1]
        b = rng.randint(2, 9) if target == 0 else rng.choice(divisors)
        a = target // b
    else:
        b = rng.randint(2, 9)
        a = target * b
    return op, random_tree(left, a, rng, top), random_tree(right, b, rng, top)


def _with_leaves(tree: Tree, numbers: list[int]) -> Tree:
    """The tree with its leaves replaced, left to right, by `numbers` (consumed)."""
    if isinstance(tree, int):
        return numbers.pop(0)
    return tree[0], _with_leaves(tree[1], numbers), _with_leaves(tree[2], numbers)


def leaves(tree: Tree) -> list[int]:
    return [tree] if isinstance(tree, int) else leaves(tree[1]) + leaves(tree[2])


def inverted(tree: Tree, masked: int, result: int) -> Tree:
    """The tree whose value is leaf number `masked` (left to right) of `tree`, given that `tree` equals `result`:
    solving the backward question, one inverse operation per level from the root down to the masked number."""
    target: Tree = result
    while not isinstance(tree, int):
        op, left, right = tree
        n_left = leaf_count(left)
        if masked < n_left:  # x in the left operand: undo op with the right one
            target = ({"+": "-", "-": "+", "*": "/", "/": "*"}[op], target, right)
            tree = left
        else:  # x in the right operand: a + x, a * x undo like the left; a - x = t gives a - t, a / x = t gives a / t
            target = (op, left, target) if op in "-/" else ({"+": "-", "*": "/"}[op], target, left)
            tree, masked = right, masked - n_left
    return target


def masked_text(expression: str, masked: int, symbol: str = "x") -> str:
    """The expression with its `masked`-th number (left to right) replaced by `symbol`, operators spaced."""
    numbers = list(re.finditer(r"\d+", expression))
    hit = numbers[masked]
    text = expression[:hit.start()] + symbol + expression[hit.end():]
    return re.sub(r"(?<=[\w)])([-+*/])(?=[\w(])", r" \1 ", text)


def backward_problem(expression: str, rng: random.Random) -> tuple[str, str, str, int]:
    """The backward question of a forward expression, one number drawn at random and masked: (its text, what it
    shows, the expression that solves it, the masked number)."""
    tree = tree_of(expression)
    result, masked = value(tree), rng.randrange(leaf_count(tree))
    shown = f"{masked_text(expression, masked)} = {result}"
    return f"{shown}. What is x?", shown, text_of(inverted(tree, masked, result)), leaves(tree)[masked]


def steps_correct(question: str, answer: str, steps: tuple[str, ...]) -> bool:
    """Whether written steps solve the question: every equation in them is true arithmetic, uses only numbers the
    question shows or earlier steps computed, and the last one's result is the answer. Lines without an equation are
    words and pass; steps without any equation do not solve anything."""
    known = {int(n) for n in re.findall(r"\d+", question)}
    last = None
    for step in steps:
        text = step.replace("×", "*").replace("÷", "/")
        if "=" not in text:
            continue
        match = _EQUATION.search(text)
        if match is None:
            return False
        left, stated = match.group(1), int(match.group(2))
        try:
            computed = value(tree_of(left.strip()))
        except (ValueError, SyntaxError):
            return False
        if computed != stated or any(int(n) not in known for n in re.findall(r"\d+", left)):
            return False
        known.add(abs(stated))
        last = stated
    return last is not None and str(last) == answer


class ArithSolutions:
    """The ReasoningDataSet methods of ArithDataset (ntkeval.data.base), from each example's expression tree; the
    data set provides expression(example), random_answer(example, rng) and is_backward(example)."""

    def solution(self, example) -> Solution:
        """Steps in evaluation order and a program; computational (hybrid writes the program) when it takes more
        than one operation, so single operations are written as steps and multi-step problems as programs."""
        tree = tree_of(self.expression(example))
        steps = steps_of(tree)
        return Solution(steps, example.answer, program_of(tree), computational=len(steps) > 1)

    def wrong_solution(self, example, rng: random.Random) -> Solution:
        """The same shape with random numbers in every step, true step by step, ending in a random answer of the
        right answer's form (drawn first, from the same generator tune-base's direct answers come from)."""
        wrong = self.random_answer(example, rng)
        tree = random_tree(tree_of(self.expression(example)), int(wrong), rng, top=self.max_operand)
        steps = steps_of(tree)
        return Solution(steps, wrong, program_of(tree), computational=len(steps) > 1)

    def format_problem(self, format_name: str, skills) -> str | None:
        """arith writes steps and a program for every problem, so every format of steps or programs."""
        return None

    def backward_question(self, example, candidate: str) -> tuple[str, str] | None:
        """FOBAR: the question with its first number masked and `candidate` given as the answer, and that number;
        None for backward questions (already the backward direction)."""
        if self.is_backward(example):
            return None
        expression = self.expression(example)
        masked = re.search(r"\d+", expression).group()
        if example.skill.endswith("/word"):
            text = re.sub(rf"(?<!\d){masked}(?!\d)", "X", example.question, count=1)
            return (f"{text} If we know the answer to the above question is {candidate}, what is the value of "
                    "unknown variable X?", masked)
        return f"{masked_text(expression, 0)} = {candidate}. What is x?", masked

    def check_steps(self, example, steps: tuple[str, ...]) -> bool:
        return steps_correct(example.question, example.answer, steps)
