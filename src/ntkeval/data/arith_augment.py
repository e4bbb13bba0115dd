"""More training data from arith's own generators (ntkeval.data.base.AugmentingDataSet): MetaMath's rephrasings
(the same problem in the other surface formats), FOBAR backward questions, AugGSM8K's several worked solutions of
one question, and Evol-Instruct's harder problems (evolve), every answer exact and every item on the train side.

    ds = ArithDataset(); e = ds.train("add/question")[0]
    ds.augment(e, "backward", 2, random.Random(0))   # "x + 55 = 96. What is x?" (41), "41 + x = 96. ..." (55)
    ds.evolved(e, 2, random.Random(0))               # same shape, numbers ten times as wide, one more addition

Split safety: an item is kept only when split_of(the question it shows) is "train" (the numbers it shows decide,
exactly as they decide for generated problems), so no test problem of any skill is ever trained on in any surface.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product

from ntkeval.data.arith_solutions import (
    Tree,
    inverted,
    leaf_count,
    leaves,
    masked_text,
    random_tree,
    text_of,
    tree_of,
    value,
)
from ntkeval.data.base import AUGMENTATIONS, EVOLUTIONS, Augmented, Example
from ntkeval.errors import UserError, choices_error
from ntkeval.formats.base import Solution, Step

DEPTHS = (1, 2)
EVOLVED_MAGNITUDE = 1_000_000  # evolved answers may be larger than generated ones (arith's 10,000), not unbounded
DRAWS = 2000  # bounded redraws: a range that cannot give a train-side problem fails instead of hanging
# the sentence that adds depth 2's extra operation to a word problem, its number as {n}
MORE = {"+": " Then {n} more are added. What is the new total?",
        "-": " Then {n} are taken away. How many are left now?",
        "*": " Then that amount is multiplied by {n}. What is the result?",
        "/": " Then that amount is split into {n} equal parts. How big is each part?"}
OWN_OPERATION = {"add": "+", "sub": "-", "mul": "*", "div": "/"}  # depth 2 of a one-operation skill repeats it


@dataclass(frozen=True)
class Generator:
    """The parts of arith's generator that augmentations reuse (given by ntkeval.data.arith, which imports this
    module, so the texts are exactly those the generator writes)."""
    shapes: Mapping[str, tuple]   # operation -> its shapes (pattern, draw, stories)
    formats: tuple[str, ...]      # the forward surface formats a problem can be rephrased into
    render: Callable              # (format, expression, shape, values, rng) -> the question text
    split_of: Callable[[str], str]  # what a text shows -> "train" or "test"


def evaluate(expression: str) -> int:
    return value(tree_of(expression))


def written(tree: Tree, right_first: bool = False) -> tuple[tuple[Step, ...], str]:
    """Steps and a program of a tree, one operation each, children before parents; right_first evaluates a node's
    right operand before its left (another valid order). Left-first gives arith_solutions' steps_of/program_of."""
    steps: list[Step] = []
    lines: list[str] = []

    def walk(t: Tree) -> str:
        if isinstance(t, int):
            return str(t)
        op, left, right = t
        if right_first:
            b = walk(right)
            a = walk(left)
        else:
            a = walk(left)
            b = walk(right)
        steps.append(Step(f"{value(left)} {op} {value(right)}", str(value(t))))
        lines.append(f"x{len(lines) + 1} = {a} {'//' if op == '/' else op} {b}")
        return f"x{len(lines)}"

    result = walk(tree)
    return tuple(steps), "\n".join([*lines, f"print({result})"])


def solution_of(tree: Tree, answer: str, right_first: bool = False) -> Solution:
    steps, program = written(tree, right_first)
    return Solution(steps, answer, program, computational=len(steps) > 1)


def wrong_of(dataset, example: Example, tree: Tree, rng: random.Random, right_first: bool = False) -> Solution:
    """The control's solution: a random answer of the example's form (drawn first, as wrong_solution does), and the
    same tree shape with random numbers in every step that ends in it."""
    wrong = dataset.random_answer(example, rng)
    return solution_of(random_tree(tree, int(wrong), rng, top=dataset.max_operand), wrong, right_first)


def shape_of(gen: Generator, op: str, expression: str) -> tuple:
    """The generator shape an expression was drawn from, and its slot values (so it can be rendered again)."""
    for shape in gen.shapes[op]:
        pattern = re.escape(shape.pattern).replace(r"\{", "{").replace(r"\}", "}")
        match = re.fullmatch(re.sub(r"{(\w)}", r"(?P<\1>\\d+)", pattern), expression)
        if match:
            return shape, {k: int(v) for k, v in match.groupdict().items()}
    raise ValueError(f"no {op} shape draws {expression!r}")


def _train_side(gen: Generator, question: str) -> bool:
    return gen.split_of(question) == "train"


def problem(kind: str, skills) -> str | None:
    """None when arith can make `kind` for every skill, else one line naming the kind and the first skill it cannot."""
    if kind not in (*AUGMENTATIONS, *EVOLUTIONS):
        return f"unknown augmentation {kind!r}; valid choices: {', '.join((*AUGMENTATIONS, *EVOLUTIONS))}"
    for skill in skills:
        if skill.endswith("/backward") and kind != "answers":
            return (f"arith cannot make {kind} from the backward skill {skill!r} (its questions are already turned "
                    "around; only answers can be made from them); expected a forward skill such as "
                    f"{skill.split('/')[0]}/question")
    return None


def augment(dataset, gen: Generator, example: Example, kind: str, n: int, rng: random.Random) -> list[Augmented]:
    """Up to n items of `kind` from one train example of `dataset` (fewer when fewer exist: never padded)."""
    if kind not in AUGMENTATIONS:
        raise choices_error("augmentation", kind, AUGMENTATIONS)
    why = problem(kind, [example.skill])
    if why:
        raise UserError(why)
    make = {"rephrase": _rephrased, "backward": _backward, "answers": _answers}[kind]
    return [item for item in make(dataset, gen, example, dataset.expression(example), rng)
            if _train_side(gen, item.example.question)][:max(0, n)]


def _rephrased(dataset, gen: Generator, example: Example, expression: str, rng: random.Random) -> list[Augmented]:
    """The same expression in each other surface format, rendered as the generator renders it."""
    op, fmt = example.skill.split("/")
    shape, values = shape_of(gen, op, expression)
    tree, out = tree_of(expression), []
    for other in (f for f in gen.formats if f != fmt):
        text = gen.render(other, expression, shape, values, rng)
        item = Example(f"{example.id}/rephrase/{other}", f"{op}/{other}", text, example.answer)
        out.append(Augmented(item, solution_of(tree, item.answer), wrong_of(dataset, item, tree, rng),
                             "rephrase", example.id))
    return out


def _backward(dataset, gen: Generator, example: Example, expression: str, rng: random.Random) -> list[Augmented]:
    """One FOBAR question per distinct masked number, left to right: the result given, the number asked for (word
    problems in MetaMath's FOBAR wording, the others as arith's backward skill writes them)."""
    op, fmt = example.skill.split("/")
    tree, out, seen = tree_of(expression), [], set()
    result = value(tree)
    for masked in range(leaf_count(tree)):
        number = leaves(tree)[masked]
        if fmt == "word":
            if number in seen:  # the story shows the number once per slot: masking its twin asks the same thing
                continue
            seen.add(number)
            text = re.sub(rf"(?<!\d){number}(?!\d)", "X", example.question, count=1)
            text = (f"{text} If we know the answer to the above question is {result}, what is the value of unknown "
                    "variable X?")
        else:
            text = f"{masked_text(expression, masked)} = {result}. What is x?"
        solving = tree_of(text_of(inverted(tree, masked, result)))
        item = Example(f"{example.id}/backward/{masked}", f"{op}/backward", text, str(number))
        out.append(Augmented(item, solution_of(solving, item.answer), wrong_of(dataset, item, solving, rng),
                             "backward", example.id))
    return out


def _answers(dataset, gen: Generator, example: Example, expression: str, rng: random.Random) -> list[Augmented]:
    """Other worked solutions of the same question, each an exact re-derivation of the same value: distributivity
    ((a+b)*c as a*c + b*c; (a+b)/c as a/c + b/c where both divide exactly), the other evaluation order of two
    independent sub-expressions, and commuted operands of + and *. Method changes come first, then commutations;
    solutions whose equation list (the RFT paper's notion of distinct) equals the canonical one or an earlier one
    are dropped, so a lone a-b or a/b has none. Every step uses only numbers the question shows or earlier steps
    computed, so the exact process checker accepts them."""
    tree = tree_of(expression)
    canonical = written(tree)[0]
    seen, out = {canonical}, []
    for candidate, right_first in _alternatives(tree):
        steps = written(candidate, right_first)[0]
        if steps in seen:
            continue
        seen.add(steps)
        item = Example(f"{example.id}/answers/{len(out)}", example.skill, example.question, example.answer)
        out.append(Augmented(item, solution_of(candidate, example.answer, right_first),
                             wrong_of(dataset, item, candidate, rng, right_first), "answers", example.id))
    return out


def _alternatives(tree: Tree) -> list[tuple[Tree, bool]]:
    """(tree, right_first) pairs of the same value, method changes first: distributed, reordered, then commuted."""
    distributed = _distributed(tree)
    methods = [(distributed, False)] if distributed is not None else []
    for base in [tree] + ([distributed] if distributed is not None else []):
        if not isinstance(base, int) and not isinstance(base[1], int) and not isinstance(base[2], int):
            methods.append((base, True))  # two independent sub-expressions: either may be computed first
    commuted = [(c, order) for base, order in [(tree, False), *methods] for c in _commuted(base)]
    return methods + commuted


def _distributed(tree: Tree) -> Tree | None:
    """The tree with its first (pre-order) product or exact quotient of a sum or difference distributed, or None."""
    if isinstance(tree, int):
        return None
    op, left, right = tree
    exact = op == "*" or (not isinstance(left, int) and value(left[1]) % value(right) == 0
                          and value(left[2]) % value(right) == 0)  # a quotient distributes only where each divides
    if op in "*/" and not isinstance(left, int) and left[0] in "+-" and exact:
        return left[0], (op, left[1], right), (op, left[2], right)
    if op == "*" and not isinstance(right, int) and right[0] in "+-":
        return right[0], ("*", left, right[1]), ("*", left, right[2])
    for side in (1, 2):
        inner = _distributed(tree[side])
        if inner is not None:
            return (op, inner, right) if side == 1 else (op, left, inner)
    return None


def _commuted(tree: Tree) -> list[Tree]:
    """The tree with every non-empty subset of its + and * nodes' operands swapped (pre-order subsets, in order)."""
    def nodes(t: Tree, path: tuple = ()) -> list[tuple]:
        if isinstance(t, int):
            return []
        here = [path] if t[0] in "+*" else []
        return here + nodes(t[1], path + (1,)) + nodes(t[2], path + (2,))

    def swapped(t: Tree, chosen: set, path: tuple = ()) -> Tree:
        if isinstance(t, int):
            return t
        op, left, right = t[0], swapped(t[1], chosen, path + (1,)), swapped(t[2], chosen, path + (2,))
        return (op, right, left) if path in chosen else (op, left, right)

    paths = nodes(tree)
    return [swapped(tree, {p for p, on in zip(paths, mask) if on})
            for mask in product((False, True), repeat=len(paths)) if any(mask)]


def evolved(dataset, gen: Generator, example: Example, depth: int, rng: random.Random) -> Augmented:
    """A harder problem of the same skill and surface: depth 1 redraws the example's shape with every number range
    ten times as wide (plus 9: one more digit) and keeps a draw whose largest number exceeds the example's; depth 2
    also appends one more operation (a one-operation skill repeats its own: a+b+c, a/b/c; ops and cplex draw one of
    + - * /), written after a word problem as one more sentence. The answer is exact (evaluate)."""
    if depth not in DEPTHS:
        raise choices_error("evolve depth", depth, DEPTHS)
    why = problem("depth", [example.skill])
    if why:
        raise UserError(why)
    op, fmt = example.skill.split("/")
    expression = dataset.expression(example)
    shape, _ = shape_of(gen, op, expression)
    r = dataset._ranges
    wide = dataclasses.replace(r, big=10 * r.big + 9, digit=2 * r.digit + 1, mid=10 * r.mid + 9, small=10 * r.small + 9)
    largest = max(leaves(tree_of(expression)))
    for _ in range(DRAWS):
        values = shape.draw(rng, wide)
        if values is None:
            continue
        inner = shape.pattern.format(**values)
        if max(leaves(tree_of(inner))) <= largest:
            continue
        harder, extra = (inner, "") if depth == 1 else _one_more(op, inner, wide, rng)
        if harder is None:
            continue
        answer = evaluate(harder)
        if not 0 <= answer < EVOLVED_MAGNITUDE:
            continue
        if fmt == "word":
            text = gen.render(fmt, inner, shape, values, rng) + extra
        else:
            text = gen.render(fmt, harder, shape, values, rng)
        if not _train_side(gen, text):
            continue
        item = Example(f"{example.id}/evolve/{depth}", example.skill, text, str(answer))
        tree = tree_of(harder)
        return Augmented(item, solution_of(tree, item.answer), wrong_of(dataset, item, tree, rng), "evolve",
                         example.id)
    raise UserError(f"arith: no train-side evolved problem of depth {depth} for {example.id!r} in {DRAWS} draws")


def _one_more(op: str, inner: str, wide, rng: random.Random) -> tuple[str | None, str]:
    """The expression with one more operation appended, and the word-problem sentence that says it (None: redraw)."""
    extra = OWN_OPERATION.get(op) or rng.choice("+-*/")
    total = evaluate(inner)
    if extra == "+":
        n = rng.randint(1, wide.big)
    elif extra == "-":
        if total < 1:
            return None, ""
        n = rng.randint(1, min(total, wide.big))
    elif extra == "*":
        n = rng.randint(2, wide.digit)
    else:
        divisors = [d for d in range(2, wide.digit + 1) if total % d == 0]
        if not divisors or total == 0:
            return None, ""
        n = rng.choice(divisors)
    # left-associative, so brackets only where a lower-precedence top operation would otherwise be split
    bracket = extra in "*/" and tree_of(inner)[0] in "+-"
    expression = f"({inner}){extra}{n}" if bracket else f"{inner}{extra}{n}"
    return expression, MORE[extra].format(n=n)
