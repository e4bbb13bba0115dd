"""Gather a sweep dir into kernel.csv, one heatmap per (model, learner, dataset) and a list of what went wrong.

    ntkeval-report outputs/multirun/2025-01-01/12-00-00 [--out DIR]    # DIR defaults to SWEEP_DIR/report

Exit code 0 when every cell of the grid is done, 1 when some failed, died or never started, 2 for a bad sweep dir.
The functions below are the reusable pieces: load_results, write_kernel_csv, plot_kernels, find_problems.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ntkeval.heatmap import plot_kernels
from ntkeval.kernel_table import format_table, kernel_tables, safe_name
from ntkeval.structure import STRUCTURE_COLUMNS, Contrast, structure_stats
from ntkeval.sweep_grid import Problem, find_problems, natural_key, relaunch_command

__all__ = ["load_results", "write_kernel_csv", "plot_kernels", "find_problems", "Problem", "main"]

KERNEL_COLUMNS = ["model", "learner", "dataset", "train_skill", "test_skill", "n",
                  "p_learner", "p_control", "delta", "ci_low", "ci_high"]


def load_results(sweep_dir: Path | str) -> list[dict]:
    """Every readable result.json under `sweep_dir`, in job order, each with "result_path" (str) added."""
    results = []
    for path in sorted(Path(sweep_dir).rglob("result.json"), key=natural_key):
        try:
            result = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            # its job dir is then reported as incomplete; say why here
            print(f"ntkeval-report: skipping unreadable {path}: {err}", file=sys.stderr)
            continue
        if not isinstance(result, dict) or "status" not in result:
            print(f"ntkeval-report: skipping {path}: not a cell result (no status)", file=sys.stderr)
            continue
        result["result_path"] = str(path)
        results.append(result)
    return results


def kernel_rows(results: list[dict]) -> list[dict]:
    """One flat row per (done cell, test skill), sorted by model, learner, dataset, train skill; tests in cell order."""
    rows = []
    for result in results:
        if result.get("status") != "done":
            continue
        cell = result.get("cell") or {}
        for test in result.get("tests") or []:
            row = {k: cell.get(k) for k in ("model", "learner", "dataset", "train_skill")}
            row.update({k: test.get(k) for k in KERNEL_COLUMNS[4:]})
            rows.append(row)
    # a stable sort keeps each cell's test order and the job order of reruns
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in KERNEL_COLUMNS[:4]))


def write_kernel_csv(results: list[dict], path: Path | str) -> Path:
    """Write the tidy kernel table (KERNEL_COLUMNS) of the done cells to `path`; floats keep full precision."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=KERNEL_COLUMNS)
        writer.writeheader()
        writer.writerows(kernel_rows(results))
    return path


def summary_line(results: list[dict], problems: list[Problem]) -> str:
    done = sum(r.get("status") == "done" for r in results)
    count = {kind: sum(p.kind == kind for p in problems) for kind in ("failed", "incomplete", "missing")}
    return f"{done} cells done, {count['failed']} failed, {count['incomplete']} incomplete, {count['missing']} missing"


def problems_text(results: list[dict], problems: list[Problem], notes: list[str]) -> str:
    """The summary line, one line per problem, then the notes on checks that were skipped."""
    lines = [summary_line(results, problems)] + [p.line() for p in problems] + [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_structure(stats: list[Contrast], pngs: list[Path], out_dir: Path) -> None:
    """structure.csv (one row per model, learner and data set) and summary.md: verdicts, heatmaps, statistics."""
    with open(out_dir / "structure.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=STRUCTURE_COLUMNS)
        writer.writeheader()
        writer.writerows(c.row() for c in stats)
    lines = ["# NTKEval report", ""]
    for c in stats:
        stem = "kernel_" + "_".join(safe_name(p) for p in (c.model, c.learner, c.dataset))
        image = next((p.name for p in pngs if p.stem == stem or p.stem.startswith(stem + "_seed")), None)
        lines += [f"## {c.model} · {c.learner} · {c.dataset}", "", f"**{c.verdict}**", ""]
        lines += [f"![kernel]({image})", ""] if image else []
        lines += [f"| contrast | mean A | mean B | A - B | 95% CI | permutation p | pairs A / B |",
                  "|---|---|---|---|---|---|---|",
                  f"| {c.contrast} | {c.mean_a:+.4f} | {c.mean_b:+.4f} | {c.diff:+.4f} | "
                  f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.p_value:.3g} | {c.n_pairs_a} / {c.n_pairs_b} |", ""]
    (out_dir / "summary.md").write_text("\n".join(lines))


def mirror_to_wandb(sweep_dir: Path, out_dir: Path, results: list[dict], stats: list[Contrast],
                    pngs: list[Path], mode: str) -> Path | None:
    """One W&B run for the whole sweep, in the cells' project and group: heatmaps, the kernel, the statistics."""
    from omegaconf import OmegaConf

    from ntkeval.tracking import WandbLogger, run_id_for

    sweep_cfg = OmegaConf.load(sweep_dir / "multirun.yaml") if (sweep_dir / "multirun.yaml").is_file() else None
    project = OmegaConf.select(sweep_cfg, "logger.project", default="ntkeval") if sweep_cfg else "ntkeval"
    entity = OmegaConf.select(sweep_cfg, "logger.entity", default=None) if sweep_cfg else None
    tracker = WandbLogger(project=project, entity=entity, mode=mode).start(
        run_id=run_id_for(f"report:{sweep_dir.resolve()}"), name=f"report {sweep_dir.name}", group=sweep_dir.name,
        job_type="report", config={"sweep_dir": str(sweep_dir.resolve()), "cells": len(results)}, dir=str(out_dir))
    for png in pngs:
        tracker.image(f"kernel/{png.stem}", png)
    rows = kernel_rows(results)
    tracker.table("kernel", KERNEL_COLUMNS, [[r[c] for c in KERNEL_COLUMNS] for r in rows])
    tracker.table("structure", STRUCTURE_COLUMNS, [[c.row()[k] for k in STRUCTURE_COLUMNS] for c in stats])
    tracker.summary({f"{c.model}/{c.learner}/{c.dataset}/verdict": c.verdict for c in stats})
    tracker.finish()
    return tracker.run_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ntkeval-report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun dir (or any dir of cell runs)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default SWEEP_DIR/report)")
    parser.add_argument("--wandb", choices=["offline", "online"], default=None,
                        help="also log a summary run (heatmaps, kernel, statistics) to W&B in the sweep's project "
                             "and group; offline runs are uploaded later with `wandb sync`")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: write the report, print the kernels and problems, return the exit code."""
    args = parse_args(argv)
    sweep_dir: Path = args.sweep_dir
    if not sweep_dir.is_dir():
        print(f"ntkeval-report: no such sweep dir: {sweep_dir}", file=sys.stderr)
        return 2
    results = load_results(sweep_dir)
    if not results:
        print(f"ntkeval-report: no result.json found under {sweep_dir}", file=sys.stderr)
        return 2
    out_dir: Path = args.out or sweep_dir / "report"
    notes: list[str] = []
    try:
        csv_path = write_kernel_csv(results, out_dir / "kernel.csv")
        pngs = plot_kernels(results, out_dir)
        stats = structure_stats(kernel_rows(results))
        write_structure(stats, pngs, out_dir)
        problems = find_problems(sweep_dir, results, notes)
        text = problems_text(results, problems, notes)
        (out_dir / "problems.txt").write_text(text)
    except OSError as err:  # an unwritable --out dir is the user's to fix: one line, no traceback
        print(f"ntkeval-report: {err}", file=sys.stderr)
        return 2
    for table in kernel_tables(results):
        print(format_table(table) + "\n")
    print("\n".join(c.verdict for c in stats) + "\n")
    print(text, end="")
    print(f"wrote {csv_path}, structure.csv, summary.md, {len(pngs)} heatmap(s) and problems.txt to {out_dir}")
    if args.wandb:
        run_dir = mirror_to_wandb(sweep_dir, out_dir, results, stats, pngs, args.wandb)
        print(f"W&B summary run ({args.wandb}): {run_dir}")
    command = relaunch_command(sweep_dir) if problems else None
    if command:
        print(f"to rerun only the failed, incomplete and missing cells:\n  {command}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
