"""What a backend is: a model loader (what a conf/model YAML builds), the model session of one cell, and the small
language-model object scorers score and sample with; plus the backend-neutral records they exchange.

No torch or transformers here, so scorers, learners and the cell depend on these interfaces only. Hugging Face
transformers + PEFT (ntkeval.backends.huggingface) is the main implementation; tests/toy_backend.py is a second one in
pure Python. A new backend is one module implementing ModelLoader, ModelSession and LanguageModel, plus one
conf/model YAML naming its loader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ntkeval.errors import UserError

# The scoring rule every backend implements (where an answer's tokens begin: ntkeval.backends.huggingface.tokenization
# states it). Bump when it changes: it keys cached scores.
SCORING_RULE_VERSION = 1


@dataclass(frozen=True)
class AnswerScore:
    logprob: float  # log p(answer tokens | context), natural log
    greedy: bool    # every answer token is the argmax at its position: greedy decoding would write this answer
    n_tokens: int   # number of answer tokens


@dataclass(frozen=True)
class SamplingSpec:
    n: int = 16                   # completions per question
    temperature: float = 1.0      # > 0
    top_p: float = 1.0            # nucleus sampling: the smallest set of tokens holding this much probability
    max_new_tokens: int = 16
    stop: tuple[str, ...] = ("\n",)  # text that ends a completion (cut off from its text)

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(self.stop))
        bad = _invalid(self)
        if bad:
            raise UserError(bad)

    def identity(self) -> dict:
        return {"n": self.n, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "stop": list(self.stop)}


def _invalid(spec: SamplingSpec) -> str | None:
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if not isinstance(spec.n, int) or isinstance(spec.n, bool) or spec.n < 2:
        return f"scorer.n={spec.n!r} is invalid; valid: an integer >= 2 (completions per question; a standard error needs two)"
    if not number(spec.temperature) or spec.temperature <= 0:
        return (f"scorer.temperature={spec.temperature!r} is invalid; valid: a number > 0 "
                "(1.0 samples the model as it is; greedy decoding is scorer=exact's greedy accuracy)")
    if not number(spec.top_p) or not 0 < spec.top_p <= 1:
        return f"scorer.top_p={spec.top_p!r} is invalid; valid: a number in (0, 1]"
    if not isinstance(spec.max_new_tokens, int) or isinstance(spec.max_new_tokens, bool) or spec.max_new_tokens < 1:
        return f"scorer.max_new_tokens={spec.max_new_tokens!r} is invalid; valid: an integer >= 1"
    if not all(isinstance(s, str) and s for s in spec.stop):
        return f"scorer.stop={list(spec.stop)!r} is invalid; valid: a list of non-empty strings, e.g. ['\\n']"
    return None


@dataclass(frozen=True)
class Completion:
    tokens: tuple[int, ...]  # exactly the drawn token ids
    text: str                # decoded, cut at the first stop string
    end: str                 # "stop", "eos" or "length"
    logp: float              # log p(tokens) under the distribution they were drawn from (temperature, top-p applied)


@dataclass(frozen=True)
class TrainingSettings:
    """How an adapter is trained (the LoRA learner's settings; the adapter's own shape is the backend's config)."""
    steps: int               # optimizer steps
    batch_size: int          # sequences per step
    lr: float                # learning rate
    weight_decay: float
    seed: int                # adapter initialisation and data order
    checkpoint_every: int = 10  # steps between resumable checkpoints
    snapshots: tuple[int, ...] = ()  # steps after which the adapter as it is then goes to train_adapter's on_snapshot


@dataclass(frozen=True)
class GradientSpec:
    """Which answer gradients a session's optional answer_gradients computes (scorer=entk): with respect to a fresh
    LoRA adapter ("lora": `lora` is the backend's adapter config, initialised from `seed` exactly as train_adapter
    initialises one) or to every weight of the model as loaded ("full"); exact vectors (projection None) or a seeded
    CountSketch of `projection` buckets (seeded by `seed` too)."""
    params: str                     # "lora" or "full"
    lora: Any = None                # the adapter config for params="lora" (peft.LoraConfig on Hugging Face)
    seed: int = 0
    projection: int | None = None   # None: the exact gradient; d: its CountSketch in d buckets


@runtime_checkable
class LanguageModel(Protocol):
    """One model as a scorer sees it, its role's adaptation already active: scoring and sampling on text."""

    def encode(self, prompt: str) -> list[int]: ...  # the token ids sample() conditions on after `prompt`

    def encode_pair(self, prompt: str, answer: str) -> tuple[list[int], list[int]]: ...  # (context, answer) ids
    #   that score() teacher-forces: the scoring rule (ntkeval.backends.huggingface.tokenization)

    def score(self, requests: list[tuple[str, str]], batch_size: int = 16, reuse_prefix: bool = False,
              desc: str | None = "scoring") -> list[AnswerScore]: ...  # teacher-forced log p(answer | prompt)

    def sample(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
               desc: str = "sampling") -> list[list[Completion]]: ...  # spec.n completions per prompt, one seed each

    def score_completions(self, prompts: list[str], completions: list[list[Completion]], batch_size: int = 16,
                          desc: str = "scoring samples") -> list[list[float]]: ...  # log p of drawn token ids


@runtime_checkable
class ModelSession(Protocol):
    """The model of one cell: loaded on first use only, adapters added to it and switched, never reloaded."""

    @property
    def loaded(self) -> bool: ...

    def language_model(self, adapter: str | None) -> AbstractContextManager[LanguageModel]: ...  # None: untouched

    def load_adapter(self, name: str, adapter_dir: Path) -> None: ...  # a saved adapter, under `name`

    def train_adapter(self, name: str, config: Any, texts: list[tuple[str, str]], settings: TrainingSettings,
                      desc: str, checkpoint: Path | None, out_dir: Path,
                      on_snapshot: Callable[[int, Path, list[float]], None] | None = None) -> list[float]: ...
    #   saved in out_dir; returns the loss per step. After each step s of settings.snapshots it calls
    #   on_snapshot(s, a directory holding the adapter as it is then (deleted after the call), the losses so far)


@runtime_checkable
class ModelLoader(Protocol):
    name: str                           # how results call the model
    lora_target_modules: Sequence[str]  # the modules a LoRA adapter adapts when the learner's LoRA config names none

    def identity(self) -> dict: ...  # everything that determines the weights (JSON; part of every cache key)

    def key(self, device: str) -> dict: ...  # identity() as loaded on `device` (the dtype really used)

    def session(self, device: str) -> ModelSession: ...  # the model session of one cell: loads on first use
