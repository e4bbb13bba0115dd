"""A second backend, in pure Python (no torch, no transformers): a character-level "cache" language model whose
probabilities are written down in one line, so tests can compute every number by hand. It is the proof that a
backend is one module (this one) plus one conf/model YAML (`_target_: toy_backend.ToyModel`).

The model: tokens are the characters of string.printable plus an end-of-sequence token. After a context x,
    p(c | x) = (prior + count of c in x) / (prior * V + len(x)),   V = 101 tokens,
so characters the prompt already holds (in-context demonstrations) become likelier, and the probabilities of the V
tokens sum to one. It has no weights to adapt: LoRA learners are refused with a UserError.
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ntkeval.backends.base import AnswerScore, Completion, SamplingSpec, TrainingSettings
from ntkeval.errors import UserError

ALPHABET = string.printable  # token id = position; the end-of-sequence token comes after it
EOS = len(ALPHABET)
VOCAB = len(ALPHABET) + 1
NO_ADAPTERS = "model=toy: this backend cannot train adapters; valid learners: icl-standard, icl-skill"


class ToyLanguageModel:
    """The LanguageModel of the toy backend."""

    def __init__(self, prior: float):
        self.prior = prior

    def distribution(self, context: list[int]) -> list[float]:
        counts = Counter(context)
        total = self.prior * VOCAB + len(context)
        return [(self.prior + counts[t]) / total for t in range(VOCAB)]

    def encode(self, prompt: str) -> list[int]:
        unknown = sorted({c for c in prompt if c not in ALPHABET})
        if unknown:
            raise UserError(f"model=toy cannot encode {unknown!r}; valid: the characters of string.printable")
        return [ALPHABET.index(c) for c in prompt]  # an empty prompt conditions on nothing: p is uniform then

    def encode_pair(self, prompt: str, answer: str) -> tuple[list[int], list[int]]:
        stripped = prompt.rstrip()  # the scoring rule: trailing whitespace belongs to the answer
        return self.encode(stripped), self.encode(prompt[len(stripped):] + answer)

    def _teacher_forced(self, context: list[int], tokens: list[int]) -> tuple[float, bool]:
        logp, greedy, seen = 0.0, True, list(context)
        for token in tokens:
            probs = self.distribution(seen)
            logp += math.log(probs[token])
            greedy &= token == max(range(VOCAB), key=lambda t: (probs[t], -t))  # argmax, lowest id on ties
            seen.append(token)
        return logp, greedy

    def score(self, requests: list[tuple[str, str]], batch_size: int = 16, reuse_prefix: bool = False,
              desc: str | None = "scoring") -> list[AnswerScore]:
        out = []
        for prompt, answer in requests:
            context, tokens = self.encode_pair(prompt, answer)
            logp, greedy = self._teacher_forced(context, tokens)
            out.append(AnswerScore(logp, greedy, len(tokens)))
        return out

    def _sampling_distribution(self, context: list[int], spec: SamplingSpec) -> list[float]:
        weights = [p ** (1 / spec.temperature) for p in self.distribution(context)]
        order = sorted(range(VOCAB), key=lambda t: -weights[t])
        total, kept, mass = sum(weights), set(), 0.0
        for t in order:  # the nucleus: the most probable tokens until top_p of the mass is held
            if mass >= spec.top_p:
                break
            kept.add(t)
            mass += weights[t] / total
        norm = sum(weights[t] for t in kept)
        return [weights[t] / norm if t in kept else 0.0 for t in range(VOCAB)]

    def _draw_one(self, context: list[int], spec: SamplingSpec, rng: random.Random) -> Completion:
        tokens: list[int] = []
        logp = 0.0
        for _ in range(spec.max_new_tokens):
            probs = self._sampling_distribution(context + tokens, spec)
            token = rng.choices(range(VOCAB), weights=probs)[0]
            tokens.append(token)
            logp += math.log(probs[token])
            text = "".join(ALPHABET[t] for t in tokens if t != EOS)
            cuts = [text.index(s) for s in spec.stop if s in text]
            if cuts:
                return Completion(tuple(tokens), text[:min(cuts)], "stop", logp)
            if token == EOS:
                return Completion(tuple(tokens), text, "eos", logp)
        return Completion(tuple(tokens), "".join(ALPHABET[t] for t in tokens if t != EOS), "length", logp)

    def sample(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
               desc: str = "sampling") -> list[list[Completion]]:
        out = []
        for prompt, seed in zip(prompts, seeds):
            rng = random.Random(seed)
            out.append([self._draw_one(self.encode(prompt), spec, rng) for _ in range(spec.n)])
        return out

    def score_completions(self, prompts: list[str], completions: list[list[Completion]], batch_size: int = 16,
                          desc: str = "scoring samples") -> list[list[float]]:
        return [[self._teacher_forced(self.encode(prompt), list(c.tokens))[0] for c in drawn]
                for prompt, drawn in zip(prompts, completions)]


class ToySession:
    """The ModelSession of the toy backend: nothing to load, no adapters."""

    def __init__(self, prior: float):
        self.prior = prior
        self.loaded = False

    @contextmanager
    def language_model(self, adapter: str | None) -> Iterator[ToyLanguageModel]:
        if adapter is not None:
            raise UserError(NO_ADAPTERS)
        self.loaded = True
        yield ToyLanguageModel(self.prior)

    def load_adapter(self, name: str, adapter_dir: Path) -> None:
        raise UserError(NO_ADAPTERS)

    def train_adapter(self, name: str, config, texts: list[tuple[str, str]], settings: TrainingSettings,
                      desc: str = "tuning", checkpoint: Path | None = None, out_dir: Path | None = None,
                      on_snapshot=None) -> list[float]:
        raise UserError(NO_ADAPTERS)


class ToyModel:
    """The ModelLoader of the toy backend (what conf/model/toy.yaml builds)."""

    def __init__(self, name: str = "toy", prior: float = 1.0, lora_target_modules: tuple[str, ...] = ()):
        if not prior > 0:
            raise UserError(f"model.prior={prior!r} is invalid; valid: a number > 0 (a pseudo-count)")
        self.name = name
        self.prior = float(prior)
        self.lora_target_modules = list(lora_target_modules)

    def identity(self) -> dict:
        return {"kind": "toy", "version": 1, "name": self.name, "prior": self.prior}

    def key(self, device: str) -> dict:
        return self.identity()  # pure Python: the device changes nothing

    def session(self, device: str) -> ToySession:
        return ToySession(self.prior)
