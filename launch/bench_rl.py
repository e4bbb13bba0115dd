"""Time GRPO steps of tune-rl on the embedded SmolLM2-135M (CPU by default): seconds per step, what one step holds,
and the mean rewards per step, through the learner's real path (prompts, exact rewards, TRL's GRPOTrainer, the
stage cache), with the model loaded before the clock starts.

Run: python launch/bench_rl.py [--steps 3] [--prompts 4] [--generations 4] [--max-completion 64] [--format direct]
     [--device cpu]
On a shared CPU the numbers move with the load of the machine: repeat, and read them as an order of magnitude.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.cache import StageCache
from ntkeval.data.arith import ArithDataset
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat, PotFormat, WorkFormat
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.rl import RlLearner
from ntkeval.prompts import PromptFormat

FORMATS = {"direct": DirectFormat, "cot": CotFormat, "pot": PotFormat, "work": WorkFormat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-completion", type=int, default=64, help="tokens per completion at most")
    parser.add_argument("--format", choices=sorted(FORMATS), default="direct")
    parser.add_argument("--reward", default="correct", help="comma-separated: correct,process or format")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skill", default="add/question")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("ntkeval.backends.huggingface.policy_training").setLevel(logging.INFO)  # a line per step

    answer_format = FORMATS[args.format]()
    loader = EmbeddedModel()
    session = loader.session(args.device)
    session.model  # load now: the clock below times training only
    learner = RlLearner(steps=args.steps, batch_size=args.prompts * args.generations, lr=1e-3,
                        num_generations=args.generations, max_completion_length=args.max_completion,
                        reward=args.reward.split(","), checkpoint_every=args.steps + 1)
    learner.bind_model(loader)
    with tempfile.TemporaryDirectory() as folder:
        context = AdaptContext(dataset=ArithDataset(seed=0, n_train=32, n_test=4), train_skill=args.skill, seed=0,
                               fmt=PromptFormat().with_instruction(answer_format.instruction()),
                               cache=StageCache(Path(folder)), model_key=loader.key(args.device), session=session,
                               format=answer_format)
        start = time.perf_counter()
        adapted = learner.adapt(context)
        seconds = time.perf_counter() - start
    print(f"smollm2 on {args.device} ({torch.get_num_threads()} threads), format={args.format}, "
          f"reward={args.reward}: {args.steps} GRPO steps of {args.prompts} prompts x {args.generations} completions "
          f"(<= {args.max_completion} tokens)")
    print(f"  {seconds:.1f} s in all, {seconds / args.steps:.1f} s per step")
    print(f"  loss per step: {[round(v, 4) for v in adapted.loss]}")
    for row in adapted.record.tables["rewards"]["rows"]:
        print("  step {}: mean reward {:.3f}  ".format(*row[:2]) +
              "  ".join(f"{c} {v:.3f}" for c, v in zip(adapted.record.tables["rewards"]["columns"][2:], row[2:])))


if __name__ == "__main__":
    main()
