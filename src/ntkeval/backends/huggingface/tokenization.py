"""The tokenization rules of the Hugging Face backend, in one place: where an answer's tokens begin, what an empty
prompt is conditioned on, and what pads a batch. Teacher forcing, sampling and training all take them from here.

The answer rule (the same as EleutherAI lm-evaluation-harness, so numbers are comparable):
  1. trailing whitespace of the prompt moves to the front of the answer;
  2. whole = encode(prompt + answer), context = encode(prompt), both with the tokenizer's own special tokens (BOS
     where the model expects one);
  3. the answer's tokens are whole[len(context):]; the model reads context + those tokens.
So an answer is scored as the tokens a model would produce after the prompt, merges across the boundary included.

No torch import: only the tokenizer is called.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodedPair:
    context: list[int]  # token ids the model conditions on (BOS included where the tokenizer adds one)
    answer: list[int]   # token ids whose log-probabilities are summed


def empty_prompt_token(tokenizer) -> int:
    """What an empty prompt is conditioned on: one token is needed to predict the first answer token from. BOS where
    the tokenizer has one (id 0 included: `bos or eos` would skip it), else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """The token ids a sampler conditions on after `prompt` (special tokens included); never empty."""
    return list(tokenizer(prompt)["input_ids"]) or [empty_prompt_token(tokenizer)]


def pad_id(tokenizer) -> int:
    """The id that fills a right-padded batch (masked out, so any id works; the tokenizer's pad, else EOS)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, prompt: str, answer: str) -> EncodedPair:
    """Tokenize one (prompt, answer) pair by the rule in this module's docstring."""
    stripped = prompt.rstrip()
    answer = prompt[len(stripped):] + answer
    whole = tokenizer(stripped + answer)["input_ids"]
    context = tokenizer(stripped)["input_ids"]
    answer_ids = list(whole[len(context):])
    if not answer_ids:
        raise ValueError(f"answer {answer!r} has no tokens after prompt {prompt[-40:]!r}")
    # the fallback applies after the split: the answer's tokens begin where the (empty) prompt's encoding ends
    return EncodedPair(context=list(context) or [empty_prompt_token(tokenizer)], answer=answer_ids)
