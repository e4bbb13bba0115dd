"""Teacher-forced scoring on transformers: log p(answer | prompt) in length-sorted batches, with the key/value cache
of a shared prompt prefix (in-context demonstrations) reused. Pairs are tokenized by the rule in
ntkeval.backends.huggingface.tokenization. A batch that runs out of device memory is retried in smaller ones
(oom.ShrinkingBatches) with the same scores.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ntkeval.backends.base import AnswerScore
from ntkeval.backends.huggingface.oom import ShrinkingBatches
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_pair, pad_id
from ntkeval.progress import progress

log = logging.getLogger(__name__)


def _length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is small."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class PrefixCache:
    """Keys and values of a prompt prefix shared by many pairs (in-context demonstrations), encoded once."""
    length: int   # prefix tokens, dropped from the front of each pair's context
    cache: object  # the model's past_key_values for the prefix, batch size 1


@torch.inference_mode()
def encode_prefix(model, prefix_ids: list[int]) -> PrefixCache:
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True, logits_to_keep=1)
    return PrefixCache(length=len(prefix_ids), cache=out.past_key_values)


@torch.inference_mode()
def _score_batch(model, pairs: list[EncodedPair], pad_id: int, prefix: PrefixCache | None = None,
                 width: int | None = None) -> list[AnswerScore]:
    """Score one batch: right padding, so real tokens never attend to padding and positions need no correction.
    With a prefix cache, only the tokens after the prefix are run, attending to the cached prefix.
    width: the padded length of the full sequences (prefix included); None: the longest pair's."""
    skip = prefix.length if prefix else 0
    seqs = [(p.context + p.answer)[skip:] for p in pairs]
    width = max([len(s) for s in seqs] + ([width - skip] if width is not None else []))
    device = next(model.parameters()).device
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), skip + width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :skip + len(seq)] = 1
    extra = {}
    if prefix is not None:
        past = copy.deepcopy(prefix.cache)  # the forward pass appends to the cache; keep the prefix's own clean
        past.batch_repeat_interleave(len(seqs))
        extra["past_key_values"] = past
    # Only positions that predict an answer token need logits: project just that span onto the vocabulary.
    first = min(len(p.context) for p in pairs) - 1 - skip
    last = max(len(p.context) + len(p.answer) for p in pairs) - 1 - skip
    keep = torch.arange(first, last, device=device)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep, **extra).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for row, p in enumerate(pairs):
        start = len(p.context) - 1 - skip - first
        span = logprobs[row, start:start + len(p.answer)]
        target = torch.tensor(p.answer, device=device)
        token_lp = span.gather(1, target[:, None]).squeeze(1)
        greedy = bool((span.argmax(dim=-1) == target).all())
        scores.append(AnswerScore(float(token_lp.double().sum()), greedy, len(p.answer)))
    return scores


def shared_prefix_length(pairs: list[EncodedPair]) -> int:
    """Tokens that begin every pair's context (and leave at least one context token of its own to each)."""
    first = pairs[0].context
    n = min(len(p.context) for p in pairs) - 1
    for p in pairs[1:]:
        k = 0
        while k < n and p.context[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


MIN_SHARED_TOKENS = 8  # below this, a shared prefix saves less than copying its cache costs


def score_pairs(model, tokenizer, pairs: list[EncodedPair], batch_size: int = 16, desc: str | None = "scoring",
                reuse_prefix: bool = False) -> list[AnswerScore]:
    """Score encoded pairs in length-sorted batches; results come back in the input order.

    reuse_prefix: the tokens that begin every pair's context (in-context demonstrations) are run once and their
    key/value cache is reused for every batch. The numbers are the same (to float rounding) because the model reads
    the same token sequence; the shared tokens are found on the token ids, so no tokenizer merge can fool it.
    desc: the progress bar's label, and the work the out-of-memory log line names; None for no progress report
    (callers that report their own). A batch that runs out of device memory is retried at half the size, each pair
    padded as in its batch of batch_size, so the scores are those of a run that fitted (bitwise on the CPU)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pad = pad_id(tokenizer)
    prefix = None
    if reuse_prefix and len(pairs) > 1:
        shared = shared_prefix_length(pairs)
        if shared >= MIN_SHARED_TOKENS:
            prefix = encode_prefix(model, pairs[0].context[:shared])
    lengths = [len(p.context) + len(p.answer) for p in pairs]
    batches = _length_batches(lengths, batch_size)
    # A pair keeps its batch's padded width when an out-of-memory retry puts it in a smaller batch: attention sums
    # over the padded width, so a narrower padding would change the last bits of its score.
    width = {i: lengths[batch[0]] for batch in batches for i in batch}  # batch[0] is the batch's longest
    order = [i for batch in batches for i in batch]

    def compute(indices: list[int]) -> list[AnswerScore]:
        scores: list[AnswerScore] = []
        for part in _runs_of_equal(indices, width):
            scores += _score_batch(model, [pairs[i] for i in part], pad, prefix, width[part[0]])
        return scores

    shrinking = ShrinkingBatches(batch_size, desc or "scoring")
    results: list[AnswerScore | None] = [None] * len(pairs)
    for i, score in zip(order, shrinking.run(order, with_progress(compute, desc, len(pairs)) if desc else compute)):
        results[i] = score
    return results  # type: ignore[return-value]


def _runs_of_equal(indices: list[int], width: dict[int, int]) -> list[list[int]]:
    """Consecutive indices split where their padded width changes (a retried batch may straddle two batches)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and width[runs[-1][-1]] == width[i]:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def with_progress(compute: Callable[[list], list], desc: str, total: int) -> Callable[[list], list]:
    """compute (a ShrinkingBatches step), reporting progress under `desc` in items done: a batch that ran out of
    memory and was retried smaller counts once."""
    ticks = progress(range(total), desc=desc, total_items=total)
    next(ticks, None)  # starts the report

    def counted(items: list) -> list:
        out = compute(items)
        for _ in items:
            next(ticks, None)  # the total-th ends the report
        return out
    return counted


def answer_logprobs(model, tokenizer, prompts: list[str], answers: list[str], batch_size: int = 16) -> list[float]:
    """log p(answer | prompt) for each pair, under the tokenization rule the cells use (the stable entry point)."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    pairs = [encode_pair(tokenizer, p, a) for p, a in zip(prompts, answers)]
    return [s.logprob for s in score_pairs(model, tokenizer, pairs, batch_size)]
