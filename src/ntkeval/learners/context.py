"""What a learner may use while adapting: the model session, the data, the format, the cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ntkeval.cache import StageCache
from ntkeval.prompts import PromptFormat


@dataclass
class AdaptContext:
    dataset: Any            # provides skills(), train(skill), random_answer(example, rng), identity()
    train_skill: str
    seed: int
    fmt: PromptFormat
    cache: StageCache
    model_key: dict          # the model's identity, part of every cached adaptation's key
    session: Any = None      # ntkeval.session.ModelSession: loads the model only when a learner really needs it
