#!/usr/bin/env python
"""Prepare mathglm-tiny (train it from scratch, or find it in the cache) and print how long that took and its greedy
accuracy on every arith skill's test split, in both answer formats it may be asked in.

    python launch/prepare_mathglm.py                             # conf/model/mathglm-tiny.yaml, cache_dir's models
    python launch/prepare_mathglm.py model.steps=400 cache_dir=/tmp/mg --n-test 20

Arguments besides --n-test are config overrides, as for `ntkeval` (model.*, cache_dir=...). Accuracy:
the share of a skill's test questions (arith seed 0, n_test questions) whose greedy completion after the cell's own
prompt reads as the right answer: format=direct is the bare answer after "A:", format=cot numbered steps under the cot
instruction line. What it is taught (conf/model/mathglm-tiny.yaml) should score far above chance (about 1 in 100 for a
two-digit answer); what it never saw should not. Training uses 2 torch threads (mathglm.THREADS); its time depends on
how busy the machine's cores are. Progress is logged every 100 steps.
"""

from __future__ import annotations

import argparse
import logging
import time

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import ntkeval.app  # noqa: F401  registers the config resolvers, as the command does
from ntkeval.backends.huggingface.embedded import MARKER
from ntkeval.backends.huggingface.mathglm import greedy_accuracy
from ntkeval.backends.huggingface.mathglm_data import skill_length
from ntkeval.build import CONF_DIR
from ntkeval.data.arith import FORMATS, OPS, ArithDataset
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=20, help="test questions per skill")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.steps=400")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=mathglm-tiny", *args.overrides])
    loader = instantiate(cfg.model)
    cached = (loader.checkpoint_dir() / MARKER).is_file()
    start = time.monotonic()
    model, tokenizer = loader.load("cpu")
    print(f"{loader.name}: {'loaded from the cache' if cached else 'prepared'} in {time.monotonic() - start:.1f} s "
          f"at {loader.checkpoint_dir()}")
    print(f"taught: operations {list(loader.data.operations)}, formats {list(loader.data.formats)}")
    dataset = ArithDataset(seed=0, n_test=args.n_test)
    skills = [f"{op}/{fmt}" for op in OPS for fmt in FORMATS]
    start = time.monotonic()
    direct = greedy_accuracy(model, tokenizer, dataset, skills, DirectFormat())
    stepped = greedy_accuracy(model, tokenizer, dataset, skills, CotFormat())
    print(f"greedy accuracy, arith test split, n_test {args.n_test} ({time.monotonic() - start:.0f} s):")
    print(f"{'skill':<20} {'taught':<8} {'direct':>7} {'cot':>7}")
    for skill in skills:
        op, fmt = skill.split("/")
        taught = op in loader.data.operations and fmt in loader.data.formats
        written = ("cot" if skill_length(op) > 1 else "direct") if taught else "no"  # the format it was taught in
        print(f"{skill:<20} {written:<8} {direct[skill]:>7.2f} {stepped[skill]:>7.2f}")


if __name__ == "__main__":
    main()
