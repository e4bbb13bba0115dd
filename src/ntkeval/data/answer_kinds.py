"""Answer kinds: whether a free-form answer is mathematically equivalent to the canonical one, and wrong answers
of the same form (for random-answer controls).

    from ntkeval.data.answer_kinds import equivalent
    equivalent("3/6", "1/2", "fraction")       # True: the same number
    equivalent("2(x+1)", "2x+2", "expression")  # True: sympy simplifies the difference to 0

Values are compared by sympy (its parser, with floats made exact rationals, then `simplify(a - b) == 0`); each
kind only decides which written forms count as an answer of that kind, so "6/2" is not an integer answer and
"0.75" is not a fraction in lowest terms.
"""

from __future__ import annotations

import random
import re
from math import gcd

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication,
    parse_expr,
    rationalize,
    standard_transformations,
)

KINDS = {  # kind -> what an answer of that kind is; the order is the one listed in error messages
    "integer": "a whole number: 12, -3 (12.0 and 1,200 are read as numbers too)",
    "decimal": "a number: 0.25, 3, 1/4 (a leading $ is ignored)",
    "fraction": "a number: 3/4, 6/8, 0.75, 1 1/2",
    "lowest-terms": "a whole number, fraction or mixed number in lowest terms: 3/4, 1 1/2",
    "percent": "a percent: 45%, 12.5% (the % sign may be left out)",
    "expression": "an algebraic expression: 2x+3, 10pi, 5^7, 3(n+2)",
    "simplified": "an expression with no brackets and like terms collected: 5x+3 (not 2x+3x+3)",
    "equation": "a solved equation x=5, or its value 5",
    "ratio": "a whole-number ratio in lowest terms: 3:4",
    "point": "a point (3, -2)",
    "text": "a word or symbol, matched ignoring case and spaces: yes, <, acute",
}

EQUIVALENCE_VERSION = 1  # bump when answer equivalence changes: it invalidates cached samples' verdicts

_TRANSFORMS = standard_transformations + (implicit_multiplication, convert_xor, rationalize)
_ALLOWED = re.compile(r"[0-9A-Za-z+\-*/^().\s]*")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_FRACTION = r"[-+]?\d+\s*/\s*\d+"
_EXPONENT = re.compile(r"(\^|\*\*)\s*(\(\s*[-+]?\d{1,3}\s*\)|[-+]?\d{1,3}(?![\d.])|[A-Za-z](?!\w))")
_MIXED = re.compile(r"([-+]?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_UNICODE = {"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u00f7": "/",
            "\u03c0": "pi", "\u00b2": "^2", "\u00b3": "^3"}


def _clean(text: str) -> str:
    """Undo typography a model or a person may use: unicode signs, outer spaces, one final full stop."""
    for old, new in _UNICODE.items():
        text = text.replace(old, new)
    text = " ".join(text.split())
    return text[:-1].rstrip() if text.endswith(".") else text  # "5." is 5 either way


def _no_thousands(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


def _tame_powers(text: str) -> bool:
    """Every exponent is a number of at most 3 digits or a letter, and no exponent is itself raised to a power."""
    operators = re.findall(r"\^|\*\*", text)
    exponents = list(_EXPONENT.finditer(text))
    return len(exponents) == len(operators) and not any(re.match(r"\s*(\^|\*\*)", text[m.end():]) for m in exponents)


def parse(text: str) -> sympy.Expr | None:
    """The exact value of a short math expression, or None if it is not one; floats become exact rationals."""
    text = _clean(text)
    mixed = _MIXED.fullmatch(text)
    if mixed:  # "2 1/3" would otherwise read as 2*(1/3)
        sign, whole, num, den = mixed.groups()
        text = f"{sign}({whole}+{num}/{den})"
    # parse_expr evaluates Python: only harmless characters reach it, no attribute access, no builtins, and no
    # huge numbers or towers of powers whose evaluation could run for minutes.
    if (len(text) > 200 or not _ALLOWED.fullmatch(text) or "__" in text or re.search(r"\d{31}", text)
            or re.search(r"[A-Za-z_]\s*\.|\.\s*[A-Za-z_]", text) or not _tame_powers(text)):
        return None
    env = {"Integer": sympy.Integer, "Float": sympy.Float, "Rational": sympy.Rational, "Symbol": sympy.Symbol,
           "Function": sympy.Function, "pi": sympy.pi, "sqrt": sympy.sqrt, "__builtins__": {}}
    try:
        value = parse_expr(text, local_dict={}, global_dict=env, transformations=_TRANSFORMS)
    except Exception:  # free-form text fails in many ways (syntax, tokens, types); all mean "not an expression"
        return None
    return value if isinstance(value, sympy.Expr) else None


def _same(a: sympy.Expr | None, b: sympy.Expr | None) -> bool:
    return a is not None and b is not None and sympy.simplify(a - b) == 0


def _number(text: str, forms: tuple[str, ...]) -> sympy.Expr | None:
    """The value of `text` if it is written in one of the forms ('int', 'dec', 'frac', 'mixed'), else None."""
    patterns = {"int": r"[-+]?\d+(?:\.0*)?", "dec": _NUM, "frac": _FRACTION, "mixed": _MIXED.pattern}
    if any(re.fullmatch(patterns[f], text) for f in forms):
        return parse(text)
    return None


def _lowest_terms(text: str) -> bool:
    """An integer, a proper-or-improper fraction, or a mixed number, with no common factor left to cancel."""
    if re.fullmatch(r"-?(0|[1-9]\d*)", text):
        return True
    match = re.fullmatch(r"-?(?:([1-9]\d*) )?([1-9]\d*)/([1-9]\d*)", text)
    if not match:
        return False
    whole, num, den = match.group(1), int(match.group(2)), int(match.group(3))
    return den >= 2 and gcd(num, den) == 1 and (whole is None or num < den)


def _point(text: str) -> tuple[sympy.Expr | None, sympy.Expr | None] | None:
    match = re.fullmatch(r"\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)", text)
    if not match:
        return None
    return tuple(_number(part, ("dec", "frac")) for part in match.groups())


def _equation(text: str) -> tuple[str, sympy.Expr] | None:
    """(variable, value) of 'x=5' or '5=x'; None for anything else."""
    sides = [s.strip() for s in text.split("=")]
    if len(sides) != 2:
        return None
    if re.fullmatch(r"[A-Za-z]", sides[1]) and not re.fullmatch(r"[A-Za-z]", sides[0]):
        sides.reverse()
    value = _number(sides[1], ("dec", "frac", "mixed"))
    return (sides[0], value) if re.fullmatch(r"[A-Za-z]", sides[0]) and value is not None else None


def _ratio(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\s*:\s*(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _collected(text: str) -> bool:
    """No brackets, and as many written terms as the expanded polynomial has: 5x+3, but not 2x+3x+3 or 5(x+1)."""
    value = parse(text)
    if value is None or re.search(r"[()\[\]]", text):
        return False
    written = re.split(r"(?<=[0-9A-Za-z.])\s*[-+]\s*", text.strip())
    return len(written) == len(sympy.Add.make_args(sympy.expand(value)))


def _text(text: str) -> str:
    return "".join(text.split()).casefold()


def equivalent(given: str, expected: str, kind: str) -> bool:
    """True when `given` is an answer of `kind` equal in value to the canonical `expected` answer."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; valid choices: {', '.join(KINDS)}")
    given, expected = _clean(given), _clean(expected)
    if kind == "text":
        return bool(given) and _text(given) == _text(expected)
    if kind in ("integer", "decimal", "fraction", "lowest-terms", "percent"):
        given, expected = _no_thousands(given), _no_thousands(expected)
    if kind == "integer":
        return _same(_number(given, ("int",)), _number(expected, ("int",)))
    if kind in ("decimal", "fraction"):
        given, expected = given.removeprefix("$"), expected.removeprefix("$")
        forms = ("dec", "frac", "mixed")
        return _same(_number(given, forms), _number(expected, forms))
    if kind == "lowest-terms":
        return _lowest_terms(given) and _same(parse(given), parse(expected))
    if kind == "percent":
        value = lambda text: _number(text.removesuffix("%").rstrip(), ("dec",))  # noqa: E731
        return _same(value(given), value(expected))
    if kind == "expression":
        return _same(parse(given), parse(expected))
    if kind == "simplified":
        return _collected(given) and _same(parse(given), parse(expected))
    if kind == "equation":
        want = _equation(expected)
        got = _equation(given) or (want and (want[0], _number(given, ("dec", "frac", "mixed"))))
        return bool(want and got) and got[0] == want[0] and _same(got[1], want[1])
    if kind == "ratio":
        got, want = _ratio(given), _ratio(expected)
        return bool(got and want) and gcd(*got) == 1 and got[0] * want[1] == got[1] * want[0] and 0 not in got
    got, want = _point(given), _point(expected)  # kind == "point"
    return bool(got and want) and all(_same(g, w) for g, w in zip(got, want))


def is_canonical(answer: str, kind: str) -> bool:
    """Whether `answer` is written the way this project writes answers of `kind` (what a model is taught)."""
    decimal = r"-?(?:0|[1-9]\d*)(?:\.\d+)?"
    if answer != answer.strip() or not answer or re.search(r"-0(\.0*)?(?![\d.])", answer):
        return False
    if kind == "integer":
        return bool(re.fullmatch(r"-?(0|[1-9]\d*)", answer))
    if kind == "decimal":
        return bool(re.fullmatch(decimal, answer))
    if kind in ("fraction", "lowest-terms"):
        return _lowest_terms(answer)
    if kind == "percent":
        return bool(re.fullmatch(decimal + "%", answer))
    if kind == "equation":
        match = re.fullmatch(r"[a-z]=(.+)", answer)
        return bool(match) and (_lowest_terms(match.group(1)) or bool(re.fullmatch(decimal, match.group(1))))
    if kind == "ratio":
        return bool(re.fullmatch(r"[1-9]\d*:[1-9]\d*", answer)) and gcd(*_ratio(answer)) == 1
    if kind == "point":
        match = re.fullmatch(r"\((\S+), (\S+)\)", answer)
        return bool(match) and all(re.fullmatch(decimal, p) or _lowest_terms(p) for p in match.groups())
    if kind == "expression":
        return parse(answer) is not None
    if kind == "simplified":
        return _collected(answer)
    return kind == "text"


def infer_kind(answer: str) -> str:
    """The kind an answer's written form suggests, for data that does not say: 1,200 -> integer, 0.50 -> decimal,
    6/8 -> fraction, 45% -> percent, 3:4 -> ratio (6:8 -> text), (1, 2) -> point, x=5 -> equation, else text."""
    text = _clean(answer)
    forms = (("integer", r"[-+]?\d{1,3}(?:,\d{3})+|[-+]?\d+"), ("decimal", r"[-+]?\d*\.\d+"),
             ("fraction", rf"{_FRACTION}|{_MIXED.pattern}"), ("percent", rf"{_NUM}\s*%"))
    for kind, pattern in forms:
        if re.fullmatch(pattern, text):
            return kind
    return next((kind for kind in ("ratio", "point", "equation") if equivalent(text, text, kind)), "text")


def _other_literal(literal: str, rng: random.Random) -> str:
    """A different-looking number with the same shape: digits before and after the point, no new leading zero."""
    whole, point, frac = literal.partition(".")
    if whole == "0" and frac:
        new_whole = "0"
    else:
        new_whole = "".join(str(rng.randint(1 if i == 0 and len(whole) > 1 else 0, 9)) for i in range(len(whole)))
    digits = [str(rng.randint(0, 9)) for _ in frac]
    if frac and frac[-1] != "0":  # 0.25 -> 0.70 would add a trailing zero the original form never has
        digits[-1] = str(rng.randint(1, 9))
    new = new_whole + point + "".join(digits)
    return new if re.search(r"[1-9]", new) else _other_literal(literal, rng)  # a zero reads as a different form


def wrong_answer(answer: str, kind: str, rng: random.Random, choices: tuple[str, ...] = ()) -> str:
    """An answer of the same kind and shape that is not equivalent to `answer`: one of its numbers changed (keeping
    digit counts and signs), or for text another of `choices`. Raises ValueError when none exists."""
    if kind == "text":
        others = sorted({c for c in choices if not equivalent(c, answer, "text")})
        if not others:
            raise ValueError(f"no other choice than {answer!r} to give as a wrong answer")
        return rng.choice(others)
    literals = list(re.finditer(r"\d+(?:\.\d+)?", answer))
    strict = is_canonical(answer, kind)
    for _ in range(500):  # shapes with few members (one digit, lowest terms) need several draws
        if not literals:
            break
        span = rng.choice(literals).span()
        candidate = answer[:span[0]] + _other_literal(answer[span[0]:span[1]], rng) + answer[span[1]:]
        valid = is_canonical(candidate, kind) if strict else equivalent(candidate, candidate, kind)
        if valid and not equivalent(candidate, answer, kind):
            return candidate
    raise ValueError(f"no wrong answer of the form of {answer!r} ({kind})")
