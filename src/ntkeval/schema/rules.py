"""The schema's vocabulary: `knob(...)` declares a config value's type and range on a dataclass field, and a
Checker walks a plain (resolved) config against those dataclasses, collecting one line per problem.

Plain Python only (no OmegaConf, no torch): the command line is checked with this before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import string
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from ntkeval.errors import shorten
from ntkeval.schema import host
from ntkeval.schema.user_classes import HYDRA_KEYS, check_user_node

MISSING = dataclasses.MISSING
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")  # a value that is just another key's value: ${tuning.lr}


@dataclass(frozen=True)
class Rule:
    """What a value must be beyond its type. For a list, `nonempty` is about the list and its strings, the rest about
    each element."""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nonempty: bool = False
    placeholder: str | None = None  # a template: must hold {placeholder} and no other {field}
    exists: str | None = None       # "file" or "model": a local path that must be there (host.path_problem)
    pattern: str | None = None      # a regular expression the whole string matches...
    means: str | None = None        # ...and how to say it to a user
    note: str | None = None         # why, appended to the message


def knob(default: Any = MISSING, **rule: Any):
    """A schema field: its default (what the class does when the key is absent; MISSING: the key is required) and
    its Rule, e.g. `steps: int = knob(40, ge=1)`."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rule": Rule(**rule)})
    return field(default=default, metadata={"rule": Rule(**rule)})


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get("rule", Rule())


@functools.cache
def _fields(schema: type) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    """A schema class's fields and resolved type hints (computed once: a grid checks thousands of jobs)."""
    return {f.name: f for f in dataclasses.fields(schema)}, typing.get_type_hints(schema)


def expected(tp: Any, rule: Rule) -> str:
    """What a value of type `tp` under `rule` must be, in words: "an integer >= 1", "a number in (0, 1]", ..."""
    if rule.means:
        return rule.means
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if _is_union(tp):
        inner = " or ".join(expected(a, rule) for a in args)
        return f"null or {inner}" if len(args) < len(typing.get_args(tp)) else inner
    if typing.get_origin(tp) is list:
        return f"a {'non-empty ' if rule.nonempty else ''}list of {_items(args[0], rule)}"
    if rule.choices is not None:
        return _listed(rule.choices) if len(rule.choices) == 1 else f"one of: {_listed(rule.choices)}"
    if tp is bool:
        return "true or false"
    if tp in (int, float):
        return ("an integer" if tp is int else "a number") + _range(rule)
    if tp is str:
        if rule.placeholder:
            return f"a text containing {{{rule.placeholder}}} and no other {{field}} (write {{{{ }}}} for braces)"
        if rule.exists:
            return host.EXPECTED_PATH[rule.exists]
        return "a non-empty string" if rule.nonempty else "a string"
    if dataclasses.is_dataclass(tp):
        return f"a node with keys {', '.join(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _items(item: Any, rule: Rule) -> str:
    """The elements of a list, in the plural: "non-empty strings", "names from: a, b"."""
    if rule.choices is not None:
        return f"names from: {_listed(rule.choices)}"
    if item is str:
        return "non-empty strings" if rule.nonempty else "strings"
    if item in (int, float):
        return ("integers" if item is int else "numbers") + _range(rule)
    return getattr(item, "__name__", str(item))


def _listed(choices) -> str:
    return ", ".join(str(c) for c in choices)


def _range(rule: Rule) -> str:
    low = ("[", rule.ge) if rule.ge is not None else ("(", rule.gt) if rule.gt is not None else None
    high = (rule.le, "]") if rule.le is not None else (rule.lt, ")") if rule.lt is not None else None
    if low and high:
        return f" in {low[0]}{_num(low[1])}, {_num(high[0])}{high[1]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {_num(low[1])}"
    if high:
        return f" {'<=' if high[1] == ']' else '<'} {_num(high[0])}"
    return ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _fits(value: Any, tp: Any) -> bool:
    """Whether `value` has type `tp` (ranges aside); int counts as a number, bool never as one."""
    if tp is Any:
        return True
    if _is_union(tp):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _breaks(value: Any, tp: Any, rule: Rule) -> str | None:
    """Why a value of the right type breaks its rule ("" when no detail helps), or None when it keeps it."""
    if isinstance(value, list):
        if rule.nonempty and (not value or any(v == "" for v in value)):
            return ""
        (item,) = typing.get_args(tp) if typing.get_origin(tp) is list else (Any,)
        return next((b for v in value if (b := _breaks(v, item, rule)) is not None), None)
    if value is None or isinstance(value, dict):
        return None
    if rule.choices is not None:
        return None if value in rule.choices else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok in ((rule.ge, lambda b: value >= b), (rule.gt, lambda b: value > b),
                          (rule.le, lambda b: value <= b), (rule.lt, lambda b: value < b)):
            if bound is not None and not ok(bound):
                return ""
    if isinstance(value, str):
        if rule.nonempty and not value:
            return ""
        if rule.placeholder is not None:
            return _template_problem(value, rule.placeholder)
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            return ""
        if rule.exists is not None:
            return host.path_problem(value, rule.exists)
    return None


def _template_problem(template: str, placeholder: str) -> str | None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:  # a lone { or }
        return str(error)
    if placeholder not in names:
        return f"no {{{placeholder}}}: every {placeholder} would read the same"
    if names - {placeholder}:
        return f"unknown field {{{sorted(names - {placeholder})[0]}}}"
    return None


class Checker:
    """Walks a resolved config (plain dicts and lists) beside its unresolved twin against the schema dataclasses.

    A problem in a value that only repeats another key (`lr: ${tuning.lr}`) is reported against that key, so a bad
    tuning.lr reads as tuning.lr, once, not as every learner setting that follows it."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def node(self, value: Any, raw: Any, schema: type, key: str) -> None:
        """Check a dict against one dataclass: required keys present, no unknown key, every value's type and rule."""
        if not isinstance(value, dict):
            return self.add(f"{key}={shorten(value)} is invalid; expected {expected(schema, Rule())}")
        target = getattr(schema, "TARGET", None)
        if target is not None and value.get("_target_") != target:
            if isinstance(value.get("_target_"), str):  # a user's own class in place of the schema's
                return check_user_node(self, value, key, [target])
            return self.add(f"{key}._target_={shorten(value.get('_target_'))} is invalid; expected {target}")
        raw = raw if isinstance(raw, dict) else {}
        fields, hints = _fields(schema)
        for name in value:
            if name not in fields and not (target and name in HYDRA_KEYS) and not getattr(schema, "OPEN", False):
                where = f"valid keys of {key}" if key else "valid keys"
                self.add(f"unknown key {_join(key, name)!r}; {where}: {', '.join(sorted(fields))}")
        for name, f in fields.items():
            if name in value:
                self.value(value[name], raw.get(name), hints[name], rule_of(f), _join(key, name))
            elif f.default is MISSING and f.default_factory is MISSING:
                self.add(_missing(_join(key, name)))

    def value(self, value: Any, raw: Any, tp: Any, rule: Rule, key: str) -> None:
        if value == "???":
            return self.add(_missing(key))
        if value is None and _fits(None, tp):
            return None
        classes = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] if _is_union(tp) else []
        if len(classes) > 1:
            return self.choose(value, raw, classes, key)
        tp = classes[0] if classes else tp  # an optional node: None was handled above
        if dataclasses.is_dataclass(tp):
            return self.node(value, raw, tp, key)
        reference = _REFERENCE.match(raw) if isinstance(raw, str) else None
        shown = reference.group(1) if reference else key  # the key the user set
        if not _fits(value, tp):
            return self.add(f"{shown}={shorten(value)} is invalid; expected {expected(tp, rule)}{_note(rule)}")
        if isinstance(value, list) and value and rule.choices is not None:
            for i, element in enumerate(value):  # name the bad element of a list of choices, not the whole list
                self.value(element, None, typing.get_args(tp)[0], dataclasses.replace(rule, nonempty=False),
                           f"{shown}[{i}]")
            return None
        problem = _breaks(value, tp, rule)
        if problem is not None:
            detail = f" ({problem})" if problem else ""
            self.add(f"{shown}={shorten(value)} is invalid{detail}; expected {expected(tp, rule)}{_note(rule)}")

    def typed(self, value: Any, tp: Any, key: str) -> None:
        """Check a value against a type alone (a user's class declares types, not ranges)."""
        self.value(value, None, tp, Rule(), key)

    def choose(self, value: Any, raw: Any, options: list[type], key: str) -> None:
        """A node that may be one of several classes (a model, a learner, ...): its _target_ picks the schema."""
        targets = {o.TARGET: o for o in options}
        target = value.get("_target_") if isinstance(value, dict) else None
        if isinstance(target, str) and target not in targets:  # a user's own class: its constructor is the schema
            return check_user_node(self, value, key, list(targets))
        if target not in targets:
            return self.add(f"{key}._target_={shorten(target)} is invalid; expected one of: {', '.join(targets)}")
        self.node(value, raw, targets[target], key)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _missing(key: str) -> str:
    return f"missing required value {key}: set it on the command line, e.g. {key}=..."


def _note(rule: Rule) -> str:
    return f" ({rule.note})" if rule.note else ""
