"""The paper's synthetic arithmetic set: 6 operations x 4 surface formats = 24 skills, every answer re-evaluated; a
fifth, opt-in surface format `backward` (FOBAR: "x + 55 = 96. What is x?") turns the problem around.

    from ntkeval.data.arith import ArithDataset
    ds = ArithDataset(seed=0); ds.test("add/word")[0]   # Example(id="add/word/test/0", ...)

Each question is drawn from a canonical expression such as "(12+7)*3". A stable hash of the numbers it shows (not the
seed, the skill, their order or the format) puts it in the train or the test bucket, so no test problem ever appears,
in any order or surface, in any train set of any skill: (12+7)*3 and (7+12)*3 always fall on one side. A backward
question needs both its forward problem and the numbers it shows ("x+55=96": 55 and 96, as 96-55 shows) in its
bucket, so neither direction of a test problem is ever trained on.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ntkeval.data import arith_augment
from ntkeval.data.answer_kinds import equivalent
from ntkeval.data.arith_solutions import ArithSolutions, backward_problem
from ntkeval.data.base import Example, SkillGroups, groups_by_axis
from ntkeval.data.selection import select_skills
from ntkeval.errors import UserError, check_distinct_choices, choices_error

OPS = ("add", "sub", "mul", "div", "ops", "cplex")
FORMATS = ("question", "instruction", "symbol", "word")  # the default formats (dataset.formats), the paper's four
ALL_FORMATS = (*FORMATS, "backward")  # backward: opt-in, so default skill lists, keys and numbers stay as they were
SKILLS = tuple(f"{op}/{fmt}" for op in OPS for fmt in FORMATS)  # ops-major: the order of kernel rows and columns
VERSION = 2          # bump whenever a change alters the generated questions, their worked solutions
# (arith_solutions) or the augmented and evolved items made from them (arith_augment): part of identity(), so of every key
TEST_BUCKETS = 4     # 1 in TEST_BUCKETS number sets is reserved for test
MAX_MAGNITUDE = 10_000  # ops/cplex answers stay below this in absolute value so they remain modest

NAMES = ("Mia", "Liam", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Ken", "Amara", "Jonas")
THINGS = ("stickers", "marbles", "apples", "cards", "pencils", "shells", "coins", "books", "beads", "stamps")


@dataclass(frozen=True)
class _Ranges:
    """Operand limits derived from max_operand; the smaller ones keep products and nested answers modest."""
    big: int     # add/sub operands, mul's larger factor, div's quotient
    digit: int   # one-digit factors and divisors
    mid: int     # additive operands inside ops
    small: int   # additive operands inside cplex

    @classmethod
    def of(cls, max_operand: int) -> _Ranges:
        return cls(big=max_operand, digit=min(9, max_operand), mid=min(50, max_operand), small=min(20, max_operand))


@dataclass(frozen=True)
class _Shape:
    """One expression pattern, how to draw its slot values, and word stories whose arithmetic is exactly it."""
    pattern: str                                           # e.g. "({a}+{b})*{c}"
    draw: Callable[[random.Random, _Ranges], dict | None]  # None: this draw is unusable, try again
    stories: tuple[str, ...]


def _draw_pair(rng: random.Random, r: _Ranges) -> dict:
    return {"a": rng.randint(1, r.big), "b": rng.randint(1, r.big)}


def _draw_mul(rng: random.Random, r: _Ranges) -> dict:
    return {"a": rng.randint(2, r.big), "b": rng.randint(2, r.digit)}  # factors of 1 would make trivial problems


def _draw_div(rng: random.Random, r: _Ranges) -> dict:
    # Draw divisor and quotient, so the dividend is exact by construction; the evaluator still checks it.
    b, q = rng.randint(2, r.digit), rng.randint(2, r.big)
    return {"a": b * q, "b": b}


def _draw_ops(rng: random.Random, r: _Ranges) -> dict:
    return {"a": rng.randint(1, r.mid), "b": rng.randint(1, r.mid), "c": rng.randint(2, r.digit)}


def _draw_cplex(rng: random.Random, r: _Ranges) -> dict:
    return {"a": rng.randint(1, r.small), "b": rng.randint(1, r.small), "c": rng.randint(2, r.digit),
            "d": rng.randint(1, r.small), "e": rng.randint(2, r.digit)}


def _draw_cplex_share(rng: random.Random, r: _Ranges) -> dict | None:
    # ((a+b)*c-d)/e: pick the final quotient q first, then d, so the division is exact and d > 0.
    v = _draw_cplex(rng, r)
    total = (v["a"] + v["b"]) * v["c"]
    if total <= v["e"]:
        return None
    q = rng.randint(1, (total - 1) // v["e"])
    return {**v, "d": total - q * v["e"]}


def _keep(draw, check: Callable[[dict], bool]):
    """A drawer that rejects the values of `draw` failing `check` (keeps stories sensible, e.g. no negative counts)."""
    return lambda rng, r: (v if (v := draw(rng, r)) and check(v) else None)


SHAPES: dict[str, tuple[_Shape, ...]] = {
    "add": (_Shape("{a}+{b}", _draw_pair, (
        "{name} has {a} {things} and gets {b} more. How many {things} does {name} have now?",
        "There are {a} {things} in a box and {b} {things} in a bag. How many {things} are there in all?",
        "{name} read {a} pages on Monday and {b} pages on Tuesday. How many pages did {name} read in total?")),),
    "sub": (_Shape("{a}-{b}", _keep(_draw_pair, lambda v: v["a"] >= v["b"]), (
        "{name} has {a} {things} and gives away {b}. How many {things} does {name} have left?",
        "A shelf holds {a} {things}. {name} takes {b} of them. How many {things} are still on the shelf?",
        "{name} needs {a} points to win and already has {b}. How many more points does {name} need?")),),
    "mul": (_Shape("{a}*{b}", _draw_mul, (
        "{name} has {b} bags with {a} {things} in each bag. How many {things} does {name} have?",
        "Each ticket costs {a} dollars. How many dollars do {b} tickets cost?",
        "A wall has {a} rows of tiles with {b} tiles in each row. How many tiles are on the wall?")),),
    "div": (_Shape("{a}/{b}", _draw_div, (
        "{name} shares {a} {things} equally among {b} friends. How many {things} does each friend get?",
        "{a} {things} are packed into boxes of {b}. How many boxes are filled?",
        "A rope {a} meters long is cut into {b} equal pieces. How many meters long is each piece?")),),
    "ops": (
        _Shape("({a}+{b})*{c}", _draw_ops, (
            "{name} buys {a} red packs and {b} blue packs. Each pack has {c} {things}. "
            "How many {things} does {name} buy?",)),
        _Shape("{a}-({b}*{c})", _keep(_draw_ops, lambda v: v["a"] >= v["b"] * v["c"]), (
            "{name} has {a} {things} and gives {b} friends {c} {things} each. How many {things} are left?",)),
        _Shape("({a}-{b})*{c}", _keep(_draw_ops, lambda v: v["a"] > v["b"]), (
            "A class has {a} students and {b} of them are absent. Each student present gets {c} {things}. "
            "How many {things} are handed out?",)),
        _Shape("({a}+{b})/{c}", _keep(_draw_ops, lambda v: (v["a"] + v["b"]) % v["c"] == 0), (
            "{name} has {a} {things} and finds {b} more, then shares them equally among {c} friends. "
            "How many {things} does each friend get?",)),
        _Shape("({a}*{c})+{b}", _keep(_draw_ops, lambda v: v["a"] > 1), (
            "A shop has {a} boxes with {c} {things} in each box and {b} loose {things}. "
            "How many {things} does the shop have?",)),
    ),
    "cplex": (
        _Shape("(({a}+{b})*{c}-{d})/{e}", _draw_cplex_share, (
            "A club has {a} boys and {b} girls. Each member brings {c} {things}. The club uses {d} of them "
            "and shares the rest equally among {e} teams. How many {things} does each team get?",)),
        _Shape("({a}*{c}-{b})*{e}+{d}", _keep(_draw_cplex, lambda v: v["a"] * v["c"] > v["b"]), (
            "{name} has {a} bags with {c} {things} in each and loses {b} {things}. {name} sells each one left "
            "for {e} dollars and also gets a {d} dollar tip. How many dollars does {name} get?",)),
        _Shape("({a}+{b})*({c}-{e})", _keep(_draw_cplex, lambda v: v["c"] > v["e"]), (
            "There are {a} red buckets and {b} blue buckets with {c} {things} in each bucket. {name} takes "
            "{e} {things} out of every bucket. How many {things} are left in the buckets?",)),
        _Shape("({a}-({b}+{d}))*{c}", _keep(_draw_cplex, lambda v: v["a"] > v["b"] + v["d"]), (
            "{name} had {a} {things}, gave away {b} on Monday and {d} on Tuesday. Each one left is worth {c} "
            "points. How many points are the {things} left worth?",)),
    ),
}


def evaluate(expression: str) -> int:
    """The exact value of an expression of ints, + - * / and brackets; raises on a division with a remainder."""
    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                if right == 0 or left % right:
                    raise ValueError(f"inexact division {left}/{right} in {expression!r}")
                return left // right
            return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]
        raise ValueError(f"unsupported syntax in {expression!r}")
    return value(ast.parse(expression, mode="eval").body)


def split_key(expression: str) -> str:
    """What decides a problem's split: the sorted numbers of its expression, which every format shows, and nothing else.

    No operation, order or format, so a+b and b+a, (a+b)*c and (b+a)*c, and a question and its word problem always
    share a split: the key is at least as coarse as "the same numbers in any order or surface, with the same answer"."""
    return ",".join(sorted(re.findall(r"\d+", expression), key=int))


def split_of(expression: str) -> str:
    """'test' or 'train', from a seed-independent hash, so every seed and skill agrees on where a problem lives."""
    digest = hashlib.sha256(f"arith-split:{split_key(expression)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_BUCKETS == 0 else "train"


def _render(fmt: str, expression: str, shape: _Shape, values: dict, rng: random.Random) -> str:
    """The surface text of one problem in one format."""
    if fmt == "question":
        return f"What is {expression}?"
    if fmt == "instruction":
        return "Compute " + re.sub(r"(?<=[\d)])([-+*/])(?=[\d(])", r" \1 ", expression) + "."
    if fmt == "symbol":
        return f"{expression}="
    story = rng.choice(shape.stories)
    return story.format(name=rng.choice(NAMES), things=rng.choice(THINGS), **values)


GENERATOR = arith_augment.Generator(SHAPES, FORMATS, _render, split_of)  # what augmentations reuse


class ArithDataset(ArithSolutions):
    """Seeded, cached generator of the arithmetic skills (6 operations x the chosen formats, 24 by default); same
    arguments give the same questions in any process. Worked solutions come from ArithSolutions."""

    name = "arith"

    def __init__(self, seed: int = 0, n_train: int = 32, n_test: int = 20, max_operand: int = 99,
                 formats: Iterable[str] = FORMATS):
        for what, value, low in (("n_train", n_train, 0), ("n_test", n_test, 0), ("max_operand", max_operand, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"arith: {what} must be an integer >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"arith: seed must be an integer, got {seed!r}")
        formats = tuple(formats)
        check_distinct_choices("dataset.formats", "arith format", list(formats), ALL_FORMATS)
        self.seed, self.n_train, self.n_test, self.max_operand = seed, n_train, n_test, max_operand
        self.formats = formats
        self._skills = tuple(f"{op}/{fmt}" for op in OPS for fmt in formats)
        self._ranges = _Ranges.of(max_operand)
        self._cache: dict[tuple[str, str], tuple[tuple[Example, str], ...]] = {}

    def skills(self) -> list[str]:
        return list(self._skills)

    def resolve(self, spec: str | Iterable[str]) -> list[str]:
        """Skills named by 'all', an operation, a format, a skill, or any collection of these; canonical order."""
        skills = list(self._skills)
        groups = {**{op: [s for s in skills if s.startswith(f"{op}/")] for op in OPS},
                  **{fmt: [s for s in skills if s.endswith(f"/{fmt}")] for fmt in self.formats}}
        return select_skills(spec, skills, groups)

    def skill_groups(self) -> SkillGroups:
        """Operation (deep: what is computed) and format (surface: how the question is written)."""
        return SkillGroups(("operation", "format"), deep="operation", surface="format", of_skill=groups_by_axis(
            self._skills, {"operation": lambda s: s.split("/")[0], "format": lambda s: s.split("/")[1]}))

    def train(self, skill: str) -> list[Example]:
        return [example for example, _ in self._generated(skill, "train")]

    def test(self, skill: str) -> list[Example]:
        return [example for example, _ in self._generated(skill, "test")]

    def expression(self, example: Example) -> str:
        """The canonical expression behind an example of this data set (for checks; word problems hide it)."""
        parts = example.id.split("/")
        if len(parts) != 4 or parts[2] not in ("train", "test") or not parts[3].isdigit():
            raise UserError(f"arith: {example.id!r} is not an example id of this data set")
        skill, split, index = f"{parts[0]}/{parts[1]}", parts[2], int(parts[3])
        pairs = self._generated(skill, split)
        if not (0 <= index < len(pairs)) or pairs[index][0] != example:
            raise UserError(f"arith: {example.id!r} is not an example of this data set")
        return pairs[index][1]

    def is_backward(self, example: Example) -> bool:
        return example.skill.endswith("/backward")

    def answer_kind(self, example: Example) -> str:
        return "integer"

    def is_correct(self, example: Example, given: str) -> bool:
        """Whether a free-form answer is the example's integer (written as a whole number: 96, -7, 1,200)."""
        return equivalent(given, example.answer, "integer")

    def random_answer(self, example: Example, rng: random.Random) -> str:
        """A wrong integer with the correct answer's sign and digit count (a different digit for one-digit answers)."""
        if re.fullmatch(r"-?\d+", example.answer) is None:
            raise UserError(f"arith: answer {example.answer!r} of {example.id!r} is not an integer")
        sign, digits = ("-", example.answer[1:]) if example.answer.startswith("-") else ("", example.answer)
        correct, width = int(digits), len(digits)
        # "-0" is not a negative number and a leading zero is not a digit, so those values never qualify.
        low = 10 ** (width - 1) if width > 1 else (1 if sign else 0)
        high = 10 ** width - 1
        if not low <= correct <= high:
            raise UserError(f"arith: answer {example.answer!r} of {example.id!r} is not in canonical form")
        pick = rng.randint(low, high - 1)  # one fewer value than the range, then skip over the correct one
        return f"{sign}{pick + 1 if pick >= correct else pick}"

    def identity(self) -> dict:
        identity = {"name": self.name, "seed": self.seed, "n_train": self.n_train, "n_test": self.n_test,
                    "max_operand": self.max_operand, "version": VERSION}
        # only when not the default four, so every key made before backward existed keeps its value
        return identity if self.formats == FORMATS else {**identity, "formats": list(self.formats)}

    # AugmentingDataSet (ntkeval.data.base): more train data from the generators themselves, in arith_augment
    def augmentation_problem(self, kind: str, skills: Iterable[str]) -> str | None:
        return arith_augment.problem(kind, list(skills))

    def augment(self, example: Example, kind: str, n: int, rng: random.Random) -> list:
        return arith_augment.augment(self, GENERATOR, example, kind, n, rng)

    def evolved(self, example: Example, depth: int, rng: random.Random):
        return arith_augment.evolved(self, GENERATOR, example, depth, rng)

    def _generated(self, skill: str, split: str) -> tuple[tuple[Example, str], ...]:
        if skill not in self._skills:
            raise choices_error("skill", skill, self._skills)
        if (skill, split) not in self._cache:
            self._cache[skill, split] = self._generate(skill, split)
        return self._cache[skill, split]

    def _generate(self, skill: str, split: str) -> tuple[tuple[Example, str], ...]:
        """n distinct problems of the split's bucket, each with its text and its independently evaluated answer."""
        op, fmt = skill.split("/")
        wanted = self.n_train if split == "train" else self.n_test
        rng = random.Random(f"arith:{VERSION}:{self.seed}:{skill}:{split}")  # str seeds hash with sha512: stable
        seen: set[str] = set()
        out: list[tuple[Example, str]] = []
        for _ in range(200 * wanted + 2000):  # bounded, so a too-small operand range fails instead of hanging
            if len(out) == wanted:
                break
            shape = rng.choice(SHAPES[op])
            values = shape.draw(rng, self._ranges)
            if values is None:
                continue
            expression = shape.pattern.format(**values)
            if split_of(expression) != split:
                continue
            answer = evaluate(expression)
            problem = f"{split_key(expression)}={answer}"  # (a+b)*c and (b+a)*c are one problem: a split holds it once
            if fmt == "backward":
                if abs(answer) >= MAX_MAGNITUDE:
                    continue
                text, shown, expression, answer = backward_problem(expression, rng)
                if split_of(shown) != split:  # its numbers as another operation shows them (96-55) share its side
                    continue
                problem = f"{split_key(shown)}={answer}"
            if problem in seen or abs(answer) >= MAX_MAGNITUDE:
                continue
            seen.add(problem)
            text = text if fmt == "backward" else _render(fmt, expression, shape, values, rng)
            out.append((Example(f"{skill}/{split}/{len(out)}", skill, text, str(answer)), expression))
        if len(out) < wanted:
            raise UserError(f"arith: only {len(out)} distinct {split} problems for {skill!r} with "
                            f"max_operand={self.max_operand}; raise max_operand or lower n_{split}")
        return tuple(out)
