#!/usr/bin/env python
"""How many samples per question each delta estimator needs to detect one cell's delta, all measured against the
same target as the exact scorer.

    python launch/sample_efficiency.py model=smollm2 learner=tune-skill pair.train=add/question \\
        pair.test=[add/question,mul/question] --replications 400 --confidence 0.95 --out outputs/efficiency

The target: a completion counts as correct when its tokens are exactly the canonical answer's tokens plus the
delimiter, the event whose probability the exact scorer computes by teacher forcing. So the reference delta is the
exact scorer's delta, exactly, and the estimators (accuracy difference, importance, mirror, balanced) estimate that
very quantity (not p(any equivalent parsed answer), which the exact scorer does not compute).

SIMULATED DRAWS. Under that event every estimator sees a completion only through whether it is canonical and, if
so, through w = p_learner(canonical) / p_control(canonical), both known exactly; at temperature 1 and top-p 1 a
completion is canonical with probability exactly p_model(canonical). So n draws per question from each model are
simulated exactly by binomial counts (ntkeval.stats.efficiency), with --replications independent draws at every size, up
to --n-max samples per question. Nothing about the estimators is approximated; the model is used only for the exact
scores.

REAL-DRAW VALIDATION (--draws N, 0 to skip): N real completions per question from the control and the learner
(the cell's sampler, stop = the delimiter); the number that are exactly canonical must match the teacher-forced
probabilities within Monte Carlo error (a z score per model), the log p recorded while drawing a canonical
completion must equal its teacher-forced log p, and the same draws give p(parsed answer correct), the scorers'
usual target, for comparison.

Writes efficiency.csv (per test skill, estimator and size: mean, bias, RMSE, spread, reported standard error,
power with its Wilson interval, coverage of the reported interval, the closed-form sd and normal-approximation
power), validation.csv, summary.md (samples needed with an interval and the coverage there, exact RMSE at a few
sizes) and efficiency.png (RMSE and power against samples), and prints the summary. Stages go through the cell's stage cache (cache_dir): tunings, exact scores and draws are reused.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from ntkeval.errors import UserError
from ntkeval.stats.efficiency import (
    ESTIMATORS,
    CanonicalQuestion,
    exact_delta,
    normal_samples_needed,
    samples_needed,
    simulate,
    sizes,
    z_value,
)

RMSE_AT = (16, 64, 256)  # sizes whose RMSE the summary lists (those within --n-max)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="the cell, as ntkeval overrides (model=..., learner=...)")
    parser.add_argument("--n-max", type=int, default=4096, help="largest number of samples per question and model")
    parser.add_argument("--replications", type=int, default=400,
                        help="independent simulated draws at every size (>= 200 for a power worth reading)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--power", type=float, default=0.8, help="fraction of replications that must detect the delta")
    parser.add_argument("--draws", type=int, default=64,
                        help="real completions per question and model for the validation (0: skip it)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="token limit of the validation draws")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated draws")
    parser.add_argument("--out", type=Path, default=Path("outputs/efficiency"))
    return parser.parse_args(argv)


def _check(args) -> None:
    z_value(args.confidence)
    if not 0 < args.power < 1:
        raise UserError(f"--power={args.power!r} is invalid; valid: a number in (0, 1)")
    if args.n_max < 2:
        raise UserError(f"--n-max={args.n_max!r} is invalid; valid: an integer >= 2")
    if args.replications < 1:
        raise UserError(f"--replications={args.replications!r} is invalid; valid: an integer >= 1 (200 or more "
                        "for a power worth reading)")
    if args.draws != 0 and args.draws < 2:
        raise UserError(f"--draws={args.draws!r} is invalid; valid: 0 (no validation) or an integer >= 2")


def canonical_ids(lm, prompt: str, target: str) -> list[int]:
    """The token ids the sampler must produce after `prompt` for the exact scorer's event: those the exact scorer
    teacher-forces (`lm`: a ntkeval.backends.base.LanguageModel). They are the same event only if the prompt has no
    trailing whitespace (the scoring rule moves it into the answer, the sampler conditions on it)."""
    context, answer = lm.encode_pair(prompt, target)
    if list(lm.encode(prompt)) != list(context):
        raise UserError(f"the prompt ends in whitespace ({prompt[-20:]!r}): the exact scorer's answer tokens are not "
                        "a continuation the sampler can draw; valid: a prompt format whose question ends without "
                        "whitespace")
    return list(answer)


def validate_draws(view, args, exact_rows: list[dict]) -> list[dict]:
    """Real draws against the teacher-forced probabilities of the canonical completion, per model."""
    from ntkeval.backends.base import SamplingSpec
    from ntkeval.scorers.sample_stages import samples

    roles = view.roles
    rows = []
    for tag, role in (("control", roles.control), ("learner", roles.learner)):
        with view.open(role) as (lm, prefix):
            canon = [canonical_ids(lm, view.fmt.prompt(e, prefix), view.fmt.target(e.answer))
                     for e in view.examples]
        spec = SamplingSpec(n=args.draws, max_new_tokens=max(args.max_new_tokens, max(len(c) for c in canon)),
                            stop=(view.fmt.delimiter,))
        drawn = samples(view, spec, role)
        hits = expected = variance = parsed = 0.0
        logp_gap = None  # no canonical draw: nothing to compare
        for q, ids, exact in zip(drawn, canon, exact_rows):
            p = math.exp(exact[f"logp_{tag}"])
            for c in q["completions"]:
                if c["tokens"] == ids:
                    hits += 1
                    logp_gap = max(logp_gap or 0.0, abs(c["logp"] - exact[f"logp_{tag}"]))
                parsed += c["correct"]
            expected += args.draws * p
            variance += args.draws * p * (1 - p)
        total = args.draws * len(view.examples)
        rows.append({"test_skill": view.test_skill, "model": tag, "draws": total, "canonical": int(hits),
                     "expected": expected, "z": (hits - expected) / math.sqrt(variance) if variance > 0 else 0.0,
                     "p_canonical": expected / total, "hit_rate": hits / total, "p_parsed_correct": parsed / total,
                     "max_logp_gap": logp_gap})
    return rows


def measure(args) -> tuple[list[dict], list[dict], list[dict]]:
    from ntkeval.cell import skill_views
    from ntkeval.preflight import compose_cell
    from ntkeval.scorers.exact import ExactScorer

    _check(args)
    cell = compose_cell(args.overrides, args.out)
    if not cell.roles().has_control:
        raise UserError(f"learner={cell.learner.name} has no control to sample from; valid choices: a learner with "
                        "a control (icl-skill, tune-skill)")
    table, summary, validation = [], [], []
    for k, view in enumerate(skill_views(cell)):
        exact, exact_rows = ExactScorer().compare(view)
        questions = [CanonicalQuestion(r["logp_control"], r["logp_learner"]) for r in exact_rows]
        rows = simulate(questions, sizes(args.n_max), args.replications, seed=args.seed * 1000 + k,
                        confidence=args.confidence)
        needed = samples_needed(rows, args.power)
        table += [{"test_skill": view.test_skill, **r} for r in rows]
        summary.append({"test_skill": view.test_skill, "estimator": "exact", "delta": exact["delta"],
                        "p_control": exact["p_control"], "p_learner": exact["p_learner"],
                        "ci": (exact["ci_low"], exact["ci_high"])})
        for name in ESTIMATORS:
            own = {r["n"]: r for r in rows if r["estimator"] == name}
            fewest = needed[name][0]
            summary.append({"test_skill": view.test_skill, "estimator": name, "needed": needed[name],
                            "coverage": own[fewest]["coverage"] if fewest is not None else None,
                            "normal": normal_samples_needed(questions, name, args.power, args.confidence),
                            "rmse": {n: own[n]["sd_exact"] for n in RMSE_AT if n in own}})
        if abs(exact_delta(questions) - exact["delta"]) > 1e-12:
            raise RuntimeError("the simulated estimators' reference differs from the exact scorer's delta")
        if args.draws:
            validation += validate_draws(view, args, exact_rows)
    return table, summary, validation


def _needed_text(n: int | None, n_max: int) -> str:
    return f"> {n_max}" if n is None else str(n)


def summary_text(args, summary: list[dict], validation: list[dict]) -> str:
    z = z_value(args.confidence)
    rmse_sizes = [n for n in RMSE_AT if n <= args.n_max]
    lines = [f"# Sample efficiency: {' '.join(args.overrides)}", "",
             "Target: the completion is exactly the canonical answer's tokens plus the delimiter, the event whose "
             "probability the exact scorer computes; the reference is the exact scorer's delta.",
             f"Draws are SIMULATED exactly (binomial counts of canonical completions, {args.replications} "
             "independent replications per size; see launch/sample_efficiency.py)"
             + (f" and checked against {args.draws} real draws per question and model (validation below)."
                if args.draws else "; no real-draw validation was run (--draws 0)."), "",
             f"Samples needed: fewest samples per question and model at which at least {args.power:.0%} of the "
             f"replications detect the delta (estimate > {z:.2f} reported standard errors from zero, with its sign; "
             f"confidence {args.confidence}); in brackets the sizes where the power's 95% Wilson interval first "
             "reaches that power and where it lies wholly above it (sizes step by about sqrt 2). Coverage: how "
             f"often estimate +- {z:.2f} se contains the exact delta at that size (nominal {args.confidence}); well "
             "below it, the estimator's standard error is over-confident (rare, huge weights that a typical draw "
             "never sees) and its detections are not to be trusted. 'normal': the samples the normal "
             "approximation predicts from the exact standard deviation. RMSE: exact (the estimators are unbiased, "
             "so it is their standard deviation, in closed form). Importance and mirror draw from one model, "
             "accuracy difference and balanced from both (twice the completions at the same n). Only the Monte "
             "Carlo error of the fixed questions is studied: the spread over questions (the exact delta's "
             "interval) does not shrink with samples.", ""]
    head = ("| test skill | estimator | samples needed [interval] | coverage there | normal | "
            + " | ".join(f"RMSE n={n}" for n in rmse_sizes) + " |")
    lines += [head, "|" + "---|" * (5 + len(rmse_sizes))]
    for s in summary:
        if s["estimator"] == "exact":
            lines.append(f"| {s['test_skill']} | exact: delta {s['delta']:+.4g} [{s['ci'][0]:+.4g}, "
                         f"{s['ci'][1]:+.4g}], p_control {s['p_control']:.4g}, p_learner {s['p_learner']:.4g} | 0 "
                         "| | | " + " | ".join("0" for _ in rmse_sizes) + " |")
            continue
        fewest, low, high = s["needed"]
        normal = "inf" if math.isinf(s["normal"]) else f"{max(2, math.ceil(s['normal']))}"
        coverage = "" if s["coverage"] is None else f"{s['coverage']:.2f}"
        lines.append(f"| {s['test_skill']} | {s['estimator']} | {_needed_text(fewest, args.n_max)} "
                     f"[{_needed_text(low, args.n_max)}, {_needed_text(high, args.n_max)}] | {coverage} | {normal} | "
                     + " | ".join(f"{s['rmse'][n]:.3g}" for n in rmse_sizes) + " |")
    if validation:
        lines += ["", "Real-draw validation: completions that are exactly canonical, against the teacher-forced "
                  "expectation (z within about +-3 is agreement), the largest gap between a canonical draw's "
                  "recorded log p and its teacher-forced log p, and the share of draws whose parsed answer is "
                  "correct (the sampled scorers' usual, looser target).", "",
                  "| test skill | model | draws | canonical | expected | z | p(parsed correct) | max log p gap |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {v['test_skill']} | {v['model']} | {v['draws']} | {v['canonical']} | {v['expected']:.1f} | "
                  f"{v['z']:+.2f} | {v['p_parsed_correct']:.3f} | "
                  + ("n/a" if v["max_logp_gap"] is None else f"{v['max_logp_gap']:.1e}") + " |" for v in validation]
    return "\n".join(lines) + "\n"


def write(args, table: list[dict], summary: list[dict], validation: list[dict]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("efficiency.csv", table), ("validation.csv", validation)):
        if rows:
            with open(args.out / name, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    text = summary_text(args, summary, validation)
    (args.out / "summary.md").write_text(text)
    skills = list(dict.fromkeys(r["test_skill"] for r in table))
    fig = Figure(figsize=(5.5 * len(skills), 11))
    FigureCanvasAgg(fig)
    for k, skill in enumerate(skills):
        delta = next(s["delta"] for s in summary if s["test_skill"] == skill and s["estimator"] == "exact")
        top, middle, bottom = (fig.add_subplot(3, len(skills), row * len(skills) + k + 1) for row in range(3))
        for i, name in enumerate(ESTIMATORS):
            rows = [r for r in table if r["test_skill"] == skill and r["estimator"] == name]
            ns = [r["n"] for r in rows]
            colour = f"C{i}"
            top.plot(ns, [max(r["sd_exact"], 1e-9) for r in rows], color=colour, label=name)
            top.plot(ns, [max(r["rmse"], 1e-9) for r in rows], color=colour, marker="o", markersize=3,
                     linestyle="none")
            middle.plot(ns, [r["power"] for r in rows], marker="o", markersize=3, color=colour, label=name)
            middle.fill_between(ns, [r["power_low"] for r in rows], [r["power_high"] for r in rows], color=colour,
                                alpha=0.15)
            bottom.plot(ns, [r["coverage"] for r in rows], marker="o", markersize=3, color=colour, label=name)
        top.axhline(abs(delta) / z_value(args.confidence), color="grey", linestyle="--",
                    label=f"|delta| / z (exact delta {delta:+.4f})")
        middle.axhline(args.power, color="grey", linestyle="--", label=f"power {args.power:.0%}")
        bottom.axhline(args.confidence, color="grey", linestyle="--", label=f"nominal {args.confidence}")
        for ax in (top, middle, bottom):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_minor_locator(NullLocator())
            ticks = [n for n in sorted({r["n"] for r in table}) if n & (n - 1) == 0 or n == args.n_max]
            ax.set_xticks(ticks, [str(n) for n in ticks])
            ax.legend(fontsize=7)
        top.set_yscale("log")
        top.set(ylabel="RMSE of the cell's delta (line: exact; dots: simulated)",
                title=f"{skill} (simulated draws, {args.replications} replications)")
        middle.set(ylabel="power (band: 95% Wilson)", ylim=(-0.02, 1.02))
        bottom.set(xlabel="samples per question and model", ylabel="coverage of estimate +- z se",
                   ylim=(-0.02, 1.02))
    fig.tight_layout()
    fig.savefig(args.out / "efficiency.png", dpi=120)
    return text


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        table, summary, validation = measure(args)
    except UserError as error:
        print(f"sample_efficiency: error: {error}", file=sys.stderr)
        return 2
    print(write(args, table, summary, validation))
    files = "efficiency.csv, " + ("validation.csv, " if validation else "") + "summary.md, efficiency.png"
    print(f"wrote {args.out}/{files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
