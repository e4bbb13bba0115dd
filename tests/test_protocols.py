"""The declared interfaces hold: every real class (and each toy of tests/toy_extensions.py) is an instance of its
Protocol and has each of the Protocol's members with a signature a caller of the Protocol can use. Members are read
from the Protocols themselves, so a method added to one (DataSet.skill_groups, ModelLoader.key) is checked on every
implementation without touching this file."""

from __future__ import annotations

import importlib
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pytest

# Members that an implementation lacks today, each with why: xfail(strict), so one that lands must be removed here.
KNOWN_MISSING: dict[tuple[str, str], str] = {}


def _jsonl(tmp_path) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1), "skill": s}) + "\n"
                            for s in ("a", "b") for i in range(8)))
    return str(path)


def _wandb_tracker(tmp_path):
    from ntkeval.tracking.wandb_tracker import WandbTracker

    return WandbTracker(types.SimpleNamespace(id="run0", sync_dir=str(tmp_path)))  # a stand-in run: no wandb start


def _session(tmp_path):
    from ntkeval.backends.huggingface.session import HFSession
    from ntkeval.backends.huggingface.tiny import TinyModel

    return HFSession(TinyModel(), "cpu")  # loads nothing until used


def _language_model(tmp_path):
    from ntkeval.backends.huggingface.language_model import HFLanguageModel

    return object.__new__(HFLanguageModel)  # methods only: no model needed to check them


def _plain(path: str) -> Callable:
    return lambda tmp_path: _locate(path)()


# (the Protocol, the implementation, how to make one); a Protocol that does not exist (yet) is skipped
IMPLEMENTATIONS = [
    ("ntkeval.learners.base.Learner", "ntkeval.learners.icl.InContextLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.lora.LoraLearner", None),
    ("ntkeval.learners.base.Learner", "toy_extensions.PrefixLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.rft.RejectionSampledLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.augment.AugmentedLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.rl.RlLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.opro.OproLearner", None),
    ("ntkeval.learners.base.Learner", "ntkeval.learners.opro.StartInstruction", None),
    ("ntkeval.data.base.AugmentingDataSet", "ntkeval.data.arith.ArithDataset", None),
    ("ntkeval.scorers.base.Scorer", "ntkeval.scorers.exact.ExactScorer", None),
    ("ntkeval.scorers.base.Scorer", "ntkeval.scorers.sampled.SampledScorer", None),
    ("ntkeval.scorers.base.Scorer", "ntkeval.scorers.ntk.NtkScorer", None),
    ("ntkeval.scorers.base.Scorer", "ntkeval.scorers.entk.EntkScorer", None),
    ("ntkeval.scorers.base.Scorer", "toy_extensions.GreedyScorer", None),
    ("ntkeval.data.base.DataSet", "ntkeval.data.arith.ArithDataset", None),
    ("ntkeval.data.base.DataSet", "ntkeval.data.khanskill.KhanSkillDataset", None),
    ("ntkeval.data.base.DataSet", "ntkeval.data.jsonl.JsonlDataset",
     lambda tmp_path: _locate("ntkeval.data.jsonl.JsonlDataset")(path=_jsonl(tmp_path), n_train=2, n_test=2)),
    ("ntkeval.data.base.DataSet", "toy_extensions.ToyCounting", None),
    ("ntkeval.tracking.base.Tracker", "ntkeval.tracking.base.NullTracker", None),
    ("ntkeval.tracking.base.Tracker", "ntkeval.tracking.wandb_tracker.WandbTracker", _wandb_tracker),
    ("ntkeval.backends.base.ModelLoader", "ntkeval.backends.huggingface.tiny.TinyModel", None),
    ("ntkeval.backends.base.ModelLoader", "ntkeval.backends.huggingface.mathglm.MathGLMModel", None),
    ("ntkeval.backends.base.ModelLoader", "ntkeval.backends.huggingface.embedded.EmbeddedModel", None),
    ("ntkeval.backends.base.ModelLoader", "ntkeval.backends.huggingface.hub.HubModel",
     lambda tmp_path: _locate("ntkeval.backends.huggingface.hub.HubModel")(name="m", path="owner/model")),
    ("ntkeval.backends.base.ModelSession", "ntkeval.backends.huggingface.session.HFSession", _session),
    ("ntkeval.backends.base.LanguageModel", "ntkeval.backends.huggingface.language_model.HFLanguageModel",
     _language_model),
]


def _locate(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def members(protocol: type) -> list[str]:
    """The names a Protocol declares: methods, properties and annotated attributes (its bases' too)."""
    found = set()
    for base in protocol.__mro__:
        if base in (Protocol, typing.Generic, object) or not getattr(base, "_is_protocol", False):
            continue
        found |= {n for n in base.__dict__ if not n.startswith("_")}
        found |= {n for n in getattr(base, "__annotations__", {}) if not n.startswith("_")}
    return sorted(found)


def cases() -> list:
    out = []
    for protocol_path, impl_path, make in IMPLEMENTATIONS:
        protocol = _locate(protocol_path)
        if protocol is None:
            continue  # not declared (yet): nothing to hold the class to
        short = impl_path.rpartition(".")[2]
        for member in members(protocol):
            marks = ()
            if (short, member) in KNOWN_MISSING:
                marks = pytest.mark.xfail(strict=True, reason=KNOWN_MISSING[short, member])
            out.append(pytest.param(protocol_path, impl_path, make, member, marks=marks, id=f"{short}.{member}"))
    return out


def instance(impl_path: str, make, tmp_path) -> Any:
    if make is not None:
        return make(tmp_path)
    cls = _locate(impl_path)
    assert cls is not None, f"{impl_path} cannot be imported"
    return cls()


def parameters(function: Callable) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())


def signature_problem(declared: Callable, implemented: Callable) -> str | None:
    """Why a call written against `declared` (the Protocol's method, unbound) could fail on `implemented` (the
    instance's method, bound): a parameter it does not take, a default it lacks, a required parameter more."""
    wanted = parameters(declared)[1:]  # without self
    given = parameters(implemented)
    by_name = {p.name: p for p in given}
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in given)
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in given)
    positional = [p for p in given if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, p in enumerate(wanted):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if not any(g.kind is p.kind for g in given):
                return f"takes no {'*args' if p.kind is p.VAR_POSITIONAL else '**kwargs'}"
            continue
        match = by_name.get(p.name)
        if match is None or match.kind is match.VAR_KEYWORD:
            if p.kind is not p.KEYWORD_ONLY and i < len(positional) and positional[i].kind is p.POSITIONAL_ONLY:
                match = positional[i]
            elif var_keyword and (p.kind is p.KEYWORD_ONLY or var_positional):
                continue
            else:
                return f"has no parameter {p.name!r}"
        if p.kind is not p.KEYWORD_ONLY and match.kind is match.KEYWORD_ONLY:
            return f"takes {p.name!r} by keyword only"
        if p.kind is not p.KEYWORD_ONLY and match.kind is not match.POSITIONAL_ONLY and positional.index(match) != i:
            return f"takes {p.name!r} at position {positional.index(match)}, not {i}"
        if p.default is not p.empty and match.default is match.empty:
            return f"requires {p.name!r}, which callers may leave out"
    named = {p.name for p in wanted}
    extra = [g.name for g in given if g.name not in named and g.default is g.empty
             and g.kind in (g.POSITIONAL_OR_KEYWORD, g.KEYWORD_ONLY, g.POSITIONAL_ONLY)]
    return f"requires {extra} beyond the Protocol's parameters" if extra else None


@pytest.mark.parametrize("protocol_path, impl_path, make, member", cases())
def test_each_protocol_member_is_implemented_with_a_usable_signature(protocol_path, impl_path, make, member,
                                                                     tmp_path):
    protocol = _locate(protocol_path)
    obj = instance(impl_path, make, tmp_path)
    declared = inspect.getattr_static(protocol, member, None)
    if isinstance(declared, property) or not callable(declared):  # an attribute or a property: it must be there
        assert hasattr(obj, member), f"{impl_path} has no attribute {member!r} ({protocol_path})"
        return
    implemented = getattr(obj, member, None)
    assert callable(implemented), f"{impl_path} has no method {member!r} ({protocol_path})"
    problem = signature_problem(declared, implemented)
    assert problem is None, f"{impl_path}.{member} {problem} ({protocol_path}.{member}{inspect.signature(declared)})"


@pytest.mark.parametrize("protocol_path, impl_path, make",
                         [pytest.param(p, i, m, id=i.rpartition(".")[2]) for p, i, m in IMPLEMENTATIONS
                          if _locate(p) is not None])
def test_each_class_is_an_instance_of_its_protocol(protocol_path, impl_path, make, tmp_path):
    protocol = _locate(protocol_path)
    missing = [m for m in members(protocol) if (impl_path.rpartition(".")[2], m) in KNOWN_MISSING]
    if missing:
        pytest.xfail(f"lacks {missing} today")
    checkable = protocol if getattr(protocol, "_is_runtime_protocol", False) else \
        runtime_checkable(type(protocol.__name__, (protocol, Protocol), {}))  # Learner is not runtime_checkable
    assert isinstance(instance(impl_path, make, tmp_path), checkable)


# ---- the checks check ----------------------------------------------------------------------------------------------
class _Greeter(Protocol):
    name: str

    def greet(self, who: str, loud: bool = False) -> str: ...


@pytest.mark.parametrize("method, problem", [
    ("def greet(self, who, loud=False): ...", None),
    ("def greet(self, who, loud=False, times=1): ...", None),
    ("def greet(self, *args, **kwargs): ...", None),
    ("def greet(self, who): ...", "has no parameter 'loud'"),
    ("def greet(self, who, loud): ...", "requires 'loud', which callers may leave out"),
    ("def greet(self, person, loud=False): ...", "has no parameter 'who'"),
    ("def greet(self, loud=False, who=''): ...", "takes 'who' at position 1, not 0"),
    ("def greet(self, who, *, loud=False): ...", "takes 'loud' by keyword only"),
    ("def greet(self, who, loud=False, *, times): ...", "requires ['times'] beyond the Protocol's parameters"),
])
def test_signature_problems_are_found(method, problem):
    space: dict = {}
    exec(f"class Impl:\n    name = 'x'\n    {method}\n", space)
    assert signature_problem(_Greeter.greet, space["Impl"]().greet) == problem


def test_members_are_read_from_the_protocol():
    assert members(_Greeter) == ["greet", "name"]

    class _Louder(_Greeter, Protocol):
        def shout(self) -> str: ...

    assert members(_Louder) == ["greet", "name", "shout"]  # a method added later is picked up
