"""The Hugging Face implementation of ntkeval.backends.base.LanguageModel: a transformers model and its tokenizer,
scored by teacher forcing and sampled from, as one object the scorers use without seeing either."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ntkeval.backends.base import AnswerScore, Completion, SamplingSpec
from ntkeval.backends.huggingface.sampling import completion_logprobs, draw_all
from ntkeval.backends.huggingface.teacher_forcing import score_pairs
from ntkeval.backends.huggingface.tokenization import encode_pair, encode_prompt


class HFLanguageModel:
    """A causal LM and its tokenizer (with whatever adapter is active on the model)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model = model
        self.tokenizer = tokenizer

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def encode_pair(self, prompt: str, answer: str) -> tuple[list[int], list[int]]:
        pair = encode_pair(self.tokenizer, prompt, answer)
        return pair.context, pair.answer

    def score(self, requests: list[tuple[str, str]], batch_size: int = 16, reuse_prefix: bool = False,
              desc: str | None = "scoring") -> list[AnswerScore]:
        pairs = [encode_pair(self.tokenizer, prompt, answer) for prompt, answer in requests]
        return score_pairs(self.model, self.tokenizer, pairs, batch_size, desc=desc, reuse_prefix=reuse_prefix)

    def sample(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
               desc: str = "sampling") -> list[list[Completion]]:
        return draw_all(self.model, self.tokenizer, prompts, spec, seeds, desc=desc)

    def score_completions(self, prompts: list[str], completions: list[list[Completion]], batch_size: int = 16,
                          desc: str = "scoring samples") -> list[list[float]]:
        return completion_logprobs(self.model, self.tokenizer, prompts, completions, batch_size, desc=desc)

    def __repr__(self) -> str:
        return f"HFLanguageModel({type(self.model).__name__})"
