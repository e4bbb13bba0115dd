#!/usr/bin/env python
"""Exact scoring speed on the embedded model: answer tokens scored per second for in-context prompts, by ntkeval
with and without prefix reuse and by EleutherAI lm-evaluation-harness's HFLM.loglikelihood on the same requests and
the same model object, and the largest log-prob difference from lm-eval (must be <= 1e-4; exits 1 otherwise).

    python launch/bench_scoring.py                       # smollm2, 64 requests of 8 demonstrations + a question
    python launch/bench_scoring.py --model tiny --n 32   # the random tiny model (no model preparation)

fp32 on CPU, the same batch size for all three, one warm-up pass each before timing, best of --repeats. Every timed
run starts from the (prompt, answer) strings, so ntkeval pays for its tokenization as lm-eval does. The smollm2
checkpoint is read from $NTKEVAL_CACHE/models (default ~/.cache/ntkeval/models), as the Hydra config does.
lm-eval is a test dependency (pip install -e '.[test]'), not a runtime one.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import torch

from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.tokenization import encode_pair
from ntkeval.data.arith import ArithDataset
from ntkeval.prompts import PromptFormat


def load(name: str):
    if name == "tiny":
        from ntkeval.backends.huggingface.tiny import TinyModel
        return TinyModel(name="tiny", arch="llama").load("cpu")
    from ntkeval.backends.huggingface.embedded import EmbeddedModel
    cache = os.environ.get("NTKEVAL_CACHE", "~/.cache/ntkeval")  # conf/config.yaml's cache_dir rule
    return EmbeddedModel(cache_dir=f"{cache}/models").load("cpu")


def icl_requests(n: int, demos: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (prompt, answer) pairs: the same `demos` demonstrations of add/question, then a test question of a mix of
    skills, as icl-skill cells score them."""
    data = ArithDataset(seed=seed, n_train=demos, n_test=max(1, n // 4 + 1))
    fmt = PromptFormat()
    prefix = fmt.demonstrations(data.train("add/question"))
    tests = [e for skill in ("add/question", "mul/question", "add/symbol", "sub/word") for e in data.test(skill)]
    random.Random(seed).shuffle(tests)
    return [(fmt.prompt(e, prefix), fmt.target(e.answer)) for e in tests[:n]]


def best_time(run, repeats: int) -> tuple[float, object]:
    run()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--n", type=int, default=64, help="requests")
    parser.add_argument("--demos", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = load(args.model)
    model.float().eval()
    requests = icl_requests(args.n, args.demos)
    pairs = [encode_pair(tokenizer, p, a) for p, a in requests]
    answer_tokens = sum(len(p.answer) for p in pairs)
    prompt_tokens = sum(len(p.context) for p in pairs)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, device="cpu")
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(requests)]

    ours = HFLanguageModel(model, tokenizer)  # what a cell's scorer calls (encoding included in the timing)

    def ntkeval(reuse_prefix: bool):
        scores = ours.score(requests, args.batch_size, reuse_prefix=reuse_prefix, desc=None)
        return [(s.logprob, s.greedy) for s in scores]

    runs = {
        "ntkeval, prefix reuse": lambda: ntkeval(True),
        "ntkeval, no prefix reuse": lambda: ntkeval(False),
        "lm-eval HFLM.loglikelihood": lambda: lm.loglikelihood(instances, disable_tqdm=True),
    }
    print(f"model {args.model}, {len(requests)} requests ({args.demos} demonstrations + a question), "
          f"{prompt_tokens} prompt tokens, {answer_tokens} answer tokens, batch size {args.batch_size}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, lm-eval {lm_eval.__version__}, "
          f"fp32, best of {args.repeats} after a warm-up")
    results = {}
    for name, run in runs.items():
        seconds, scores = best_time(run, args.repeats)
        results[name] = (seconds, scores)
        print(f"  {name:28s} {seconds:7.2f} s  {answer_tokens / seconds:8.1f} answer tokens/s")
    ref_seconds, ref_scores = results["lm-eval HFLM.loglikelihood"]
    ok = True
    for name in ("ntkeval, prefix reuse", "ntkeval, no prefix reuse"):
        seconds, scores = results[name]
        diff = max(abs(mine[0] - theirs[0]) for mine, theirs in zip(scores, ref_scores))
        # greedy flags can differ only at a near-tie between two tokens, so they are reported, not enforced here
        flags = sum(bool(mine[1]) != bool(theirs[1]) for mine, theirs in zip(scores, ref_scores))
        ok &= diff <= 1e-4
        print(f"  {name}: {ref_seconds / seconds:.2f}x lm-eval's speed, max |logp - lm-eval| = {diff:.2e}, "
              f"greedy flags differing: {flags}/{len(scores)}")
    if not ok:
        print("log-probs disagree with lm-eval by more than 1e-4", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
