"""Check a config node whose `_target_` the schema does not declare (a user's own learner, scorer, data set, ...)
against the constructor of the class it names, so a new option is one module and one YAML, with no schema entry.

The class is imported only here, only for a target the schema does not know: the known classes keep their typed
checks without importing anything, and a user's module may import torch if it must (that is its author's choice).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from ntkeval.errors import shorten

HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")  # read by instantiate, not the class
_PLAIN = (bool, int, float, str, type(None))  # annotations simple enough to check without guessing


def locate(target: str) -> Callable:
    """The object a dotted `_target_` names, found as Hydra finds it (the longest importable module, then
    attributes); raises ImportError or AttributeError (or whatever the user's module raises on import)."""
    parts = target.split(".")
    if not target or not all(parts):
        raise ImportError("not a dotted path")
    if len(parts) == 1:
        if hasattr(builtins, target):
            return getattr(builtins, target)
        raise ImportError(f"no module or builtin named {target!r}")
    error: BaseException | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            # only "this very module is absent" means: try a shorter prefix; a missing import inside it is real
            if missing.name is None or not module_name.startswith(missing.name):
                raise
            error = missing
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise error or ImportError(target)


def _signature(target: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check against
        return None


def _hints(target: Callable) -> dict[str, Any]:
    """The constructor's resolved type hints ({} where they cannot be resolved: then only keys are checked)."""
    init = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(init)
    except Exception:  # a forward reference the user's module cannot resolve is theirs, not a config problem
        return {}


def _plain(tp: Any) -> bool:
    """Whether a hint is a plain scalar, a list of them, or a union of those (checked as the schema checks)."""
    if tp in _PLAIN:
        return True
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        return len(args) == 1 and args[0] in _PLAIN
    return bool(args) and origin in (typing.Union, types.UnionType) and all(map(_plain, args))


def check_user_node(checker, value: dict, key: str, known: list[str]) -> None:
    """Add one line per problem of a node whose target the schema does not declare: the target cannot be imported,
    a key the constructor does not take, a required argument missing, a plainly typed value of the wrong type.
    `known` names the targets the schema does declare here, for the message of a target that does not import."""
    target = value.get("_target_")
    where = f"{key}._target_" if key else "_target_"
    try:
        found = locate(target) if isinstance(target, str) else None
    except Exception as error:  # whatever the user's module raises on import: one line, not a traceback
        detail = f"{type(error).__name__}: {' '.join(str(error).split())}"[:200]
        example = f"; the schema's own: {', '.join(known)}" if known else ""
        return checker.add(f"{where}={shorten(target)} cannot be imported ({detail}); expected an importable class "
                           f"(its module on the Python path){example}")
    if not callable(found):
        return checker.add(f"{where}={shorten(target)} is invalid; expected a class or function, not "
                           f"{type(found).__name__}")
    signature = _signature(found)
    if signature is None:
        return None
    params = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for name in value:
        if name not in named and name not in HYDRA_KEYS and not takes_any:
            valid = ", ".join(sorted(named)) or "none"
            checker.add(f"unknown key {_join(key, name)!r}; valid keys of {key or 'the config'} ({target}): {valid}")
    given_args = len(value.get("_args_") or [])
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    by_position = {p.name for p in positional[:given_args]}
    hints = _hints(found)
    for name, param in named.items():
        present = name in value and value[name] != "???"
        if not present and param.default is param.empty and name not in by_position and not value.get("_partial_"):
            checker.add(f"missing required value {_join(key, name)}: set it on the command line, e.g. "
                        f"{_join(key, name)}=...")
        elif present and isinstance(value[name], dict) and "_target_" in value[name]:
            check_user_node(checker, value[name], _join(key, name), [])  # a nested object, e.g. an optimizer
        elif present and name in hints and _plain(hints[name]):
            checker.typed(value[name], hints[name], _join(key, name))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
