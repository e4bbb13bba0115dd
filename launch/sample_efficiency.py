#!/usr/bin/env python
"""How many samples per question each delta estimator needs to detect one cell's delta.

    python launch/sample_efficiency.py model=smollm2 learner=tune-skill pair.train=add/question \\
        pair.test=[add/question,mul/question] --n 64 --confidence 0.95 --out outputs/efficiency

For each test skill of the cell: the exact delta (teacher forcing, no sampling) is the reference; n completions per
question are drawn from the control and from the learner and scored under both; the accuracy difference and the
importance-sampled estimates (importance, mirror, balanced) are computed on random subsets of 2, 4, 8, ... samples.
Writes efficiency.csv (error, standard error and power against samples), summary.md (samples needed at the chosen
confidence) and efficiency.png (RMSE against samples per question, log-log), and prints the summary.
Stages go through the cell's stage cache (cache_dir), so a rerun with a larger --n reuses the tuning.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from ntkeval.efficiency import ESTIMATORS, QuestionSamples, curves, samples_needed, z_value
from ntkeval.errors import UserError


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="the cell, as ntkeval overrides (model=..., learner=...)")
    parser.add_argument("--n", type=int, default=64, help="completions per question and model (largest size)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--power", type=float, default=0.8, help="fraction of repeats that must detect the delta")
    parser.add_argument("--repeats", type=int, default=50, help="random subsets per smaller size")
    parser.add_argument("--out", type=Path, default=Path("outputs/efficiency"))
    return parser.parse_args(argv)


def measure(args) -> tuple[list[dict], list[dict]]:
    from ntkeval.cell import skill_views
    from ntkeval.preflight import compose_cell
    from ntkeval.sampling import SamplingSpec
    from ntkeval.scorers import ExactScorer
    from ntkeval.scorers.samples import sample_logps, samples

    cell = compose_cell(args.overrides, args.out)
    z_value(args.confidence)  # a bad confidence fails before any model loads
    spec = SamplingSpec(n=args.n, max_new_tokens=args.max_new_tokens, stop=(cell.fmt.delimiter,))
    if not cell.roles().has_control:
        raise UserError(f"learner={cell.learner.name} has no control to sample from; valid choices: a learner with "
                        "a control (icl-skill, tune-skill)")
    table, summary = [], []
    for view in skill_views(cell):
        exact, _ = ExactScorer().compare(view)
        roles = view.roles
        arrays = {}
        for tag, sampler in (("c", roles.control), ("l", roles.learner)):
            drawn = samples(view, spec, sampler)
            arrays[f"correct_{tag}"] = [np.array([c["correct"] for c in q["completions"]], float) for q in drawn]
            arrays[f"lpl_{tag}"] = [np.array(x) for x in sample_logps(view, spec, sampler, roles.learner, drawn, 16)]
            arrays[f"lpc_{tag}"] = [np.array(x) for x in sample_logps(view, spec, sampler, roles.control, drawn, 16)]
        questions = [QuestionSamples(**{k: v[i] for k, v in arrays.items()}) for i in range(len(view.examples))]
        rows = curves(questions, exact["delta"], repeats=args.repeats, confidence=args.confidence)
        needed = samples_needed(rows, args.power)
        for r in rows:
            table.append({"test_skill": view.test_skill, **r})
        last = {r["estimator"]: r for r in rows if r["n"] == args.n}
        summary.append({"test_skill": view.test_skill, "estimator": "exact", "delta": exact["delta"], "se": 0.0,
                        "rmse": 0.0, "power": 1.0 if exact["ci_low"] > 0 or exact["ci_high"] < 0 else 0.0,
                        "samples_needed": 0})
        summary += [{"test_skill": view.test_skill, "estimator": name, "delta": last[name]["mean"],
                     "se": last[name]["se"], "rmse": last[name]["rmse"], "power": last[name]["power"],
                     "samples_needed": needed[name]} for name in ESTIMATORS]
    return table, summary


def write(args, table: list[dict], summary: list[dict]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "efficiency.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    lines = [f"# Sample efficiency: {' '.join(args.overrides)}", "",
             f"Samples per question each estimator needs to detect the delta (estimate z = "
             f"{z_value(args.confidence):.2f} standard errors from zero with the right sign, confidence "
             f"{args.confidence}) in at least {args.power:.0%} of {args.repeats} random subsets; exact scoring needs "
             f"none (one teacher-forced pass; its power is whether its 95% interval over questions excludes zero). "
             f"delta, se, RMSE (against the exact delta) and power at n = {args.n}.", "",
             "| test skill | estimator | delta | se | RMSE | power | samples needed |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        needed = f"> {args.n}" if s["samples_needed"] is None else s["samples_needed"]
        lines.append(f"| {s['test_skill']} | {s['estimator']} | {s['delta']:+.4f} | {s['se']:.4f} | "
                     f"{s['rmse']:.4f} | {s['power']:.2f} | {needed} |")
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    skills = list(dict.fromkeys(r["test_skill"] for r in table))
    fig = Figure(figsize=(5.5 * len(skills), 4.2))
    FigureCanvasAgg(fig)
    for k, skill in enumerate(skills):
        ax = fig.add_subplot(1, len(skills), k + 1)
        delta = next(s["delta"] for s in summary if s["test_skill"] == skill and s["estimator"] == "exact")
        for name in ESTIMATORS:
            rows = [r for r in table if r["test_skill"] == skill and r["estimator"] == name]
            ax.plot([r["n"] for r in rows], [max(r["rmse"], 1e-6) for r in rows], marker="o", label=name)
        ax.axhline(abs(delta) / z_value(args.confidence), color="grey", linestyle="--",
                   label=f"|delta| / z (exact delta {delta:+.3f})")
        ns = sorted({r["n"] for r in table if r["test_skill"] == skill})
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set(xlabel="samples per question", ylabel="RMSE of the cell's delta", title=skill)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "efficiency.png", dpi=120)
    return text


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        table, summary = measure(args)
    except UserError as error:
        print(f"sample_efficiency: error: {error}", file=sys.stderr)
        return 2
    print(write(args, table, summary))
    print(f"wrote {args.out}/efficiency.csv, summary.md, efficiency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
