"""What a backend is: the model loader a conf/model YAML builds. Its session is the one object that runs a model for
the scorers and learners (ntkeval.backends.huggingface is the implementation on transformers + PEFT)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ModelLoader(Protocol):
    name: str                       # how results call the model
    lora_target_modules: list[str]  # the modules a LoRA adapter adapts when the learner's LoRA config names none

    def identity(self) -> dict: ...  # everything that determines the weights (JSON; part of every cache key)

    def key(self, device: str) -> dict: ...  # identity() as loaded on `device` (the dtype really used)

    def session(self, device: str) -> Any: ...  # the model session of one cell: loads on first use
