"""The per-question draw as it was before questions were batched (ntkeval.backends.huggingface.sampling at commit
df6cd7a), with its sampling distribution, kept verbatim (the stop rule, _eos_ids and _finish, is the module's own,
unchanged): the reference the batched draw must reproduce token for token. One
question at a time, its n rows in one batch from one prompt encoding, torch.multinomial on every row each step, and
finished rows still run until the question's last row ends."""

from __future__ import annotations

import torch

from ntkeval.backends.base import Completion, SamplingSpec
from ntkeval.backends.huggingface.sampling import _eos_ids, _finish  # where a completion ends: one rule for both
from ntkeval.backends.huggingface.tokenization import encode_prompt


def next_token_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The log of the sampling distribution over the vocabulary for each row of logits (float32; -inf outside the
    top-p nucleus)."""
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        ordered, index = logprobs.exp().sort(dim=-1, descending=True)
        outside = ordered.cumsum(dim=-1) - ordered >= top_p  # the nucleus is already full before this token
        inside = torch.zeros_like(outside).scatter(-1, index, ~outside)
        logprobs = logprobs.masked_fill(~inside, float("-inf"))
        logprobs = logprobs - logprobs.logsumexp(dim=-1, keepdim=True)
    return logprobs


@torch.inference_mode()
def reference_draw(model, tokenizer, prompt: str, spec: SamplingSpec, seed: int) -> list[Completion]:
    """spec.n completions of one prompt, from a random stream seeded by `seed` alone."""
    device = next(model.parameters()).device
    ids = encode_prompt(tokenizer, prompt)
    generator = torch.Generator().manual_seed(seed)
    eos = _eos_ids(model, tokenizer)
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
    past = out.past_key_values
    past.batch_repeat_interleave(spec.n)
    logits = out.logits[:, -1].expand(spec.n, -1)
    drawn: list[list[int]] = [[] for _ in range(spec.n)]
    logp = [0.0] * spec.n
    done: list[Completion | None] = [None] * spec.n
    for step in range(spec.max_new_tokens):
        logprobs = next_token_logprobs(logits, spec.temperature, spec.top_p).cpu()
        tokens = torch.multinomial(logprobs.exp(), 1, generator=generator)[:, 0]
        # the log-probability each row's token was drawn with, from the very distribution it was drawn from
        token_logp = logprobs.gather(1, tokens[:, None])[:, 0].tolist()
        for row, token in enumerate(tokens.tolist()):
            if done[row] is None:
                drawn[row].append(token)
                logp[row] += token_logp[row]
                finished = _finish(tokenizer, drawn[row], spec.stop, eos)
                if finished is not None:
                    done[row] = Completion(tuple(drawn[row]), *finished, logp[row])
        if all(d is not None for d in done) or step + 1 == spec.max_new_tokens:
            break
        # Finished rows keep being extended (their tokens are ignored): every row stays the same length.
        logits = model(input_ids=tokens[:, None].to(device), past_key_values=past, use_cache=True).logits[:, -1]
    return [d if d is not None else
            Completion(tuple(row), tokenizer.decode(row, skip_special_tokens=True), "length", lp)
            for d, row, lp in zip(done, drawn, logp)]


def reference_draw_all(model, tokenizer, prompts: list[str], spec: SamplingSpec,
                       seeds: list[int]) -> list[list[Completion]]:
    return [reference_draw(model, tokenizer, p, spec, s) for p, s in zip(prompts, seeds)]
