"""What a learner is. Learners adapt a model to one train skill: in context (a prompt prefix) or by LoRA tuning (an adapter).

Every learner offers the same small interface, so the cell never asks which kind it has:
  name                      how results and W&B runs call it
  control() -> Learner|None the learner it is compared against (None: the untouched model)
  key(train_skill, seed)    everything that determines its adaptation, for the stage cache
  stage(context)            (cache kind, key parts) of its expensive stage, or None
  validate(dataset, skill)  raises UserError before any model loads if the data cannot serve it
  bind_model(model)         takes what its adaptation needs from the model config (LoRA target modules)
  adapt(context)            -> Adaptation
  recorded_loss(context)    the training loss the stage cache holds, never training for it ([] if none)

Optional (the cell and the preflight ask with getattr, so a user's learner may leave them out):
  validate_format(answer_format, dataset, train_skill)  raises UserError before any model loads when the learner
                            cannot work in the cell's answer format (tune-rft needs answers it can check)
  recorded_record(context) -> AdaptationRecord | None   what the stage cache holds of its adaptation (kept-path
                            counts, an instruction trajectory) without building it, for result.json and W&B
  curve_sizes() -> list[int]  its learning curve (learner.curve): the adaptation sizes the cell also scores
  at_size(size) -> Learner  the learner adapted with `size` demonstrations / optimizer steps, whose control() is its
                            control at that size and whose key() says exactly that; at_size(its full size) has the
                            full learner's key (the main kernel's cached scores serve that point of the curve)
  curve_unit                what a size counts ("demos", "steps"), for the report's axis
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

from ntkeval.backends.base import ModelSession
from ntkeval.cache import StageCache
from ntkeval.errors import UserError, shorten
from ntkeval.formats.direct import DirectFormat
from ntkeval.prompts import PromptFormat


@dataclass
class AdaptContext:
    dataset: Any            # provides skills(), train(skill), random_answer(example, rng), identity()
    train_skill: str
    seed: int
    fmt: PromptFormat
    cache: StageCache
    model_key: dict          # the model's identity, part of every cached adaptation's key
    session: ModelSession | None = None  # the cell's model session: loads the model only when a learner needs it
    format: Any = field(default_factory=DirectFormat)  # the cell's answer format (ntkeval.formats.base.AnswerFormat):
    # demonstrations and tuning texts are written in it, by the learner and its control alike

    def format_key(self) -> dict:
        """The answer format's part of an adaptation's key: nothing for the default direct format (today's keys)."""
        identity = self.format.identity()
        return {"answer_format": identity} if identity else {}


@dataclass
class AdaptationRecord:
    """What a learner reports about how it adapted, beside its loss: result.json holds it under "adaptation" (by
    role) and W&B mirrors it (info in the run summary, each table as a W&B table). JSON values only."""
    info: dict[str, Any] = field(default_factory=dict)    # e.g. {"kept_paths": 37, "sampled_paths": 128}
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"columns": [...], "rows": [[...], ...]}

    def to_json(self) -> dict:
        return {"info": self.info, "tables": self.tables}

    @classmethod
    def from_json(cls, data: dict | None) -> "AdaptationRecord":
        data = data or {}
        return cls(info=dict(data.get("info") or {}), tables=dict(data.get("tables") or {}))


@dataclass
class Adaptation:
    prefix: str = ""                  # text placed before every test prompt (in-context demonstrations)
    adapter_dir: Path | None = None   # a saved LoRA adapter to activate while scoring
    loss: list[float] = field(default_factory=list)  # training loss per step, for tuned learners
    record: AdaptationRecord = field(default_factory=AdaptationRecord)  # what else it reports (empty for most)


class Learner(Protocol):
    name: str

    def control(self) -> "Learner | None": ...

    def bind_model(self, model) -> None: ...

    def recorded_loss(self, context: AdaptContext) -> list[float]: ...

    def key(self, train_skill: str, seed: int) -> dict[str, Any]: ...

    def stage(self, context: AdaptContext) -> tuple[str, dict] | None: ...

    def validate(self, dataset, train_skill: str) -> None: ...

    def adapt(self, context: AdaptContext) -> Adaptation: ...


def checked_curve(curve: Any, least: int, most: int, limit: str) -> list[int] | None:
    """learner.curve as a list of sizes (None for null or []), or a one-line UserError: sizes are integers in
    [least, most] in strictly increasing order (`limit` names the setting `most` comes from)."""
    if curve is None:
        return None
    sizes = list(curve) if isinstance(curve, Sequence) and not isinstance(curve, (str, bytes)) else None
    ok = sizes is not None and all(isinstance(s, int) and not isinstance(s, bool) and least <= s <= most
                                   for s in sizes) and all(a < b for a, b in pairwise(sizes))
    if not ok:
        shown = shorten(sizes if sizes is not None else curve)
        raise UserError(f"learner.curve={shown} is invalid; valid: null or a strictly increasing list of integers "
                        f"in [{least}, {most}] ({most} from {limit}), e.g. {_example(least, most)}")
    return [int(s) for s in sizes] or None


def _example(least: int, most: int) -> list[int]:
    """A curve of doubling sizes up to the full one: [0, 1, 2, 4, 8] for 8 demonstrations."""
    sizes, size = ([0] if least == 0 else []), 1
    while size < most:
        sizes.append(size)
        size *= 2
    return sizes + [most]
