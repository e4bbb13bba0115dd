"""Sampling throughput on smollm2 (CPU): answer tokens per second of the per-question draw the project used before
batching (tests/sampling_reference.py), of the batched draw (ntkeval.backends.huggingface.sampling.draw_all), and of
transformers' own generate with num_return_sequences, on the same arith prompts, with the ratios between them.

Answer tokens are the tokens a completion keeps: up to and including its first stop string or end-of-sequence token,
else max_new_tokens (generate's rows are cut by the same rule, sampling._finish). Every method draws at temperature 1
with top-p 1 and no top-k, as the sampled scorer does by default; the batched draw's tokens are checked against the
reference's (the same seeds must give the same tokens).

Measured (2 CPU cores, no other load; the same tokens as the reference every time): max_new_tokens 16, 8 questions:
reference 228, batched 475, generate 168 answer tokens/s (2.1x the reference, 2.8x generate; max_rows=512: 2.3x);
max_new_tokens 64, 4 questions: 97, 384 and 98 (4.0x, 3.9x). On one thread: 159, 273, 114 (1.7x, 2.4x). Drawing
the noise of every row of a question at every step it has a row running is the floor the exact draw keeps.

Run:  python launch/bench_sampling.py                                # 8 questions x 64 samples, max_new_tokens 16
      python launch/bench_sampling.py --questions 4 --max-new-tokens 64
      python launch/bench_sampling.py --max-rows 64 128 256 512 --skip reference generate   # the max_rows sweep
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ntkeval.backends.base import SamplingSpec
from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.backends.huggingface.sampling import (
    DEFAULT_MAX_ROWS,
    _eos_ids,
    _finish,
    draw_all,
)
from ntkeval.backends.huggingface.tokenization import encode_prompt
from ntkeval.data.arith import SKILLS, ArithDataset
from ntkeval.prompts import PromptFormat
from tests.sampling_reference import (
    reference_draw_all,  # today's draw lives with its tests
)

METHODS = ("reference", "batched", "generate")


def prompts(count: int) -> list[str]:
    """`count` arith test questions in the direct format, spread over the skills (one per skill, then the next)."""
    data, fmt = ArithDataset(seed=0), PromptFormat()
    per_skill = [data.test(skill) for skill in SKILLS]
    return [fmt.prompt(per_skill[i % len(SKILLS)][i // len(SKILLS)]) for i in range(count)]


def kept(tokenizer, tokens: list[int], spec: SamplingSpec, eos: set[int]) -> int:
    """How many of a generated row's tokens a completion keeps: up to its first stop string or EOS."""
    for k in range(1, len(tokens) + 1):
        if _finish(tokenizer, tokens[:k], spec.stop, eos) is not None:
            return k
    return len(tokens)


@torch.inference_mode()
def generate(model, tokenizer, texts: list[str], spec: SamplingSpec, seed: int) -> int:
    """Answer tokens transformers' generate draws, one question at a time with num_return_sequences=n."""
    eos, total = _eos_ids(model, tokenizer), 0
    torch.manual_seed(seed)  # generate samples from the global stream
    for text in texts:
        ids = torch.tensor([encode_prompt(tokenizer, text)])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                             top_p=1.0, top_k=0, num_return_sequences=spec.n, max_new_tokens=spec.max_new_tokens,
                             stop_strings=list(spec.stop), tokenizer=tokenizer, eos_token_id=sorted(eos),
                             pad_token_id=tokenizer.pad_token_id)
        total += sum(kept(tokenizer, row[ids.shape[1]:].tolist(), spec, eos) for row in out)
    return total


def timed(run) -> tuple[float, float, object]:
    """Wall and CPU seconds (all threads) of run(), and its result: CPU seconds say how loaded the machine was."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--n", type=int, default=64, help="samples per question")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-rows", type=int, nargs="+", default=[DEFAULT_MAX_ROWS],
                        help="the batched draw's max_rows (several: one run each)")
    parser.add_argument("--skip", nargs="*", default=[], choices=METHODS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(os.environ.get("NTKEVAL_CACHE", Path.home() / ".cache" / "ntkeval")) / "models"
    model, tokenizer = EmbeddedModel(cache_dir=str(cache)).load("cpu")
    spec = SamplingSpec(n=args.n, max_new_tokens=args.max_new_tokens, stop=(PromptFormat().delimiter,))
    texts, seeds = prompts(args.questions), list(range(args.questions))
    print(f"smollm2 on CPU, {args.threads} threads: {args.questions} questions x {spec.n} samples, "
          f"max_new_tokens {spec.max_new_tokens}, stop {list(spec.stop)!r}, prompts of "
          f"{min(len(encode_prompt(tokenizer, t)) for t in texts)}-{max(len(encode_prompt(tokenizer, t)) for t in texts)}"
          " tokens")
    draw_all(model, tokenizer, texts[:1], SamplingSpec(n=2, max_new_tokens=2), [0], desc=None)  # warm-up
    rates, reference = {}, None
    if "reference" not in args.skip:
        *seconds, reference = timed(lambda: reference_draw_all(model, tokenizer, texts, spec, seeds))
        rates["reference"] = report("reference (per question)", answer_tokens(reference), *seconds)
    if "batched" not in args.skip:
        for max_rows in args.max_rows:
            *seconds, drawn = timed(lambda rows=max_rows: draw_all(model, tokenizer, texts, spec, seeds,
                                                                   desc=None, max_rows=rows))
            rates[f"batched max_rows={max_rows}"] = report(f"batched, max_rows={max_rows}", answer_tokens(drawn),
                                                           *seconds)
            if reference is not None:
                same = [[c.tokens for c in q] for q in drawn] == [[c.tokens for c in q] for q in reference]
                print(f"    same tokens as the reference: {same}")
    if "generate" not in args.skip:
        *seconds, tokens = timed(lambda: generate(model, tokenizer, texts, spec, seed=0))
        rates["generate"] = report("generate (num_return_sequences)", tokens, *seconds)
    for name, rate in rates.items():
        if name.startswith("batched"):
            for other in ("reference", "generate"):
                if other in rates:
                    print(f"  {name} / {other}: {rate / rates[other]:.2f}x")


def answer_tokens(drawn) -> int:
    return sum(len(c.tokens) for q in drawn for c in q)


def report(name: str, tokens: int, wall: float, cpu: float) -> float:
    """Print one method's line; its answer tokens per wall second."""
    print(f"  {name:34s} {tokens:6d} answer tokens in {wall:6.1f} s ({cpu:6.1f} CPU s): "
          f"{tokens / wall:7.1f} tokens/s", flush=True)
    return tokens / wall


if __name__ == "__main__":
    main()
