"""Gather sweep dirs into kernel.csv, one heatmap per result identity and a list of what went wrong.

    ntkeval-report outputs/sweeps/2025-01-01_12-00-00 [MORE_SWEEP_DIRS ...] [--out DIR]   # DIR: FIRST/report
    ntkeval-report SWEEP_DIR --compare model   # kernels that differ only in the model (or learner, format, scorer)

A result's identity is TABLE_IDENTITY (model, learner, dataset, test_dataset, format, scorer, estimate, config_id,
seed): rows that differ in any of it are never merged, and cells that differ only in the seed are also pooled into a
seed-pooled kernel (kernel_pooled.csv, with how much of each entry's spread is seed variation). The same identity
and pair gathered twice (e.g. from two sweep dirs) is an error naming both. Beside the kernels and the deep-versus-
surface structure (structure.csv), the kernel science, each written when the results hold it: kernels over the same
skills that differ in one axis compared (comparisons.csv: by default in-context learning against tuning, with
--compare along the learner, model, format or scorer), elementary-to-composite transfer on arith (transfer.csv),
learning curves (curves.csv, speed.csv, curves_*.png) and the predicted kernel against the measured one
(predicted.csv); summary.md holds them all.

Exit code 0 when every cell of the grid is done, 1 when some failed, died or never started, 2 for a bad sweep dir.
The functions below are the reusable pieces: load_results, write_kernel_csv, plot_kernels, find_problems.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ntkeval.report.comparisons import COMPARISON_COLUMNS, ComparisonReport, write_comparisons
from ntkeval.report.curves import write_curves
from ntkeval.report.heatmaps import plot_kernels
from ntkeval.report.kernel_pairs import AXES
from ntkeval.report.pooling import pooled_results, question_rows, seed_summary_lines
from ntkeval.report.predicted import write_predicted
from ntkeval.report.recorded_groups import kernel_groups
from ntkeval.report.structure import STRUCTURE_COLUMNS, Contrast, structure_stats
from ntkeval.report.sweep_grid import Problem, find_problems, natural_key, relaunch_command
from ntkeval.report.tables import TABLE_IDENTITY, format_table, kernel_tables
from ntkeval.report.transfer import write_transfer

__all__ = ["load_results", "gather", "check_duplicates", "write_kernel_csv", "plot_kernels", "find_problems", "Problem",
           "main"]

KERNEL_COLUMNS = [*TABLE_IDENTITY, "train_skill", "test_skill", "n", "p_learner", "p_control", "p_base",
                  "delta", "ci_low", "ci_high"]
POOLED_COLUMNS = [*TABLE_IDENTITY, "seeds", "n_seeds", "train_skill", "test_skill", "n", "delta", "ci_low",
                  "ci_high", "seed_sd", "question_se", "seed_share"]
_ROW_KEY = [*TABLE_IDENTITY, "train_skill"]  # what a kernel row's cell is, besides its test skill


class DuplicateResult(ValueError):
    """The same identity and (train, test) pair was found in two result files."""


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
        if isinstance(result.get("cell"), dict):  # cells written before answer formats were all direct
            result["cell"].setdefault("format", "direct")
            result["cell"].setdefault("test_dataset", result["cell"].get("dataset"))  # before cross-data-set cells
        results.append(result)
    return results


def kernel_rows(results: list[dict], columns: list[str] = KERNEL_COLUMNS) -> list[dict]:
    """One flat row per (done cell, test skill), sorted by identity and train skill; tests in cell order."""
    rows = []
    for result in results:
        if result.get("status") != "done":
            continue
        cell = result.get("cell") or {}
        for test in result.get("tests") or []:
            row = {k: cell.get(k) for k in _ROW_KEY if k in columns}
            if "seeds" in columns:
                row["seeds"] = " ".join(str(s) for s in cell.get("seeds") or [])
            row.update({k: test.get(k) for k in columns if k not in row})
            rows.append(row)
    # a stable sort keeps each cell's test order and the job order of reruns
    return sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in _ROW_KEY))


def check_duplicates(results: list[dict]) -> None:
    """Raise DuplicateResult naming both files when two done results hold the same identity and pair: reporting
    either would silently drop the other (a sweep repeated into a second dir, or the same grid point twice)."""
    seen: dict[tuple, str] = {}
    for result in results:
        if result.get("status") != "done":
            continue
        cell = result.get("cell") or {}
        for test in result.get("tests") or []:
            key = tuple(str(cell.get(k)) for k in _ROW_KEY) + (str(test.get("test_skill")),)
            where = result.get("result_path", "?")
            if key in seen and seen[key] != where:
                what = ", ".join(f"{k}={v}" for k, v in zip(_ROW_KEY + ["test_skill"], key))
                raise DuplicateResult(f"the same result ({what}) is in both {seen[key]} and {where}; "
                                      "report them separately or remove one")
            seen[key] = where


def write_kernel_csv(results: list[dict], path: Path | str, columns: list[str] = KERNEL_COLUMNS) -> Path:
    """Write the tidy kernel table (`columns`) of the done cells to `path`; floats keep full precision."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kernel_rows(results, columns))
    return path


def summary_line(results: list[dict], problems: list[Problem]) -> str:
    done = sum(r.get("status") == "done" for r in results)
    count = {kind: sum(p.kind == kind for p in problems) for kind in ("failed", "incomplete", "missing")}
    return f"{done} cells done, {count['failed']} failed, {count['incomplete']} incomplete, {count['missing']} missing"


def problems_text(results: list[dict], problems: list[Problem], notes: list[str]) -> str:
    """The summary line, one line per problem, then the notes on checks that were skipped."""
    lines = [summary_line(results, problems)] + [p.line() for p in problems] + [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _image_for(row: dict, tables, pngs: list[Path]) -> str | None:
    """The heatmap file of the kernel a structure row was computed from (same identity), if one was drawn."""
    names = {p.name for p in pngs}
    for table in tables:
        if all(str(getattr(table, k)) == str(row.get(k)) for k in TABLE_IDENTITY if k in row):
            name = f"{table.file_stem()}.png"
            return name if name in names else None
    return None


def write_structure(stats: list[Contrast], tables, pngs: list[Path], out_dir: Path) -> None:
    """structure.csv (one row per kernel identity) and summary.md: verdicts, heatmaps, statistics."""
    with open(out_dir / "structure.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=STRUCTURE_COLUMNS)
        writer.writeheader()
        writer.writerows(c.row() for c in stats)
    lines = ["# NTKEval report", ""]
    for c in stats:
        row = c.row()
        title = " · ".join(str(row[k]) for k in TABLE_IDENTITY if row.get(k) is not None)
        image = _image_for(row, tables, pngs)
        lines += [f"## {title}", "", f"**{c.verdict}**", ""]
        lines += [f"![kernel]({image})", ""] if image else []
        shown = [k for k in STRUCTURE_COLUMNS if k not in TABLE_IDENTITY and k != "verdict"]
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(_cell_text(row.get(k)) for k in shown) + " |", ""]
    (out_dir / "summary.md").write_text("\n".join(lines))


def _cell_text(value) -> str:
    return f"{value:+.4f}" if isinstance(value, float) else str(value)


def mirror_to_wandb(sweep_dir: Path, out_dir: Path, results: list[dict], stats: list[Contrast],
                    pngs: list[Path], mode: str, compared: ComparisonReport | None = None) -> Path | None:
    """One W&B run for the whole sweep, in the cells' project and group: heatmaps, the kernel, the statistics and
    the comparisons of kernels."""
    from omegaconf import OmegaConf

    from ntkeval.tracking.wandb_tracker import WandbLogger, run_id_for

    sweep_cfg = OmegaConf.load(sweep_dir / "multirun.yaml") if (sweep_dir / "multirun.yaml").is_file() else None
    project = OmegaConf.select(sweep_cfg, "logger.project", default="ntkeval") if sweep_cfg else "ntkeval"
    entity = OmegaConf.select(sweep_cfg, "logger.entity", default=None) if sweep_cfg else None
    tracker = WandbLogger(project=project, entity=entity, mode=mode).start(
        run_id=run_id_for(f"report:{sweep_dir.resolve()}"), name=f"report {sweep_dir.name}", group=sweep_dir.name,
        job_type="report", config={"sweep_dir": str(sweep_dir.resolve()), "cells": len(results)}, dir=str(out_dir))
    for png in pngs:
        tracker.image(f"kernel/{png.stem}", png)
    rows = kernel_rows(results)
    tracker.table("kernel", KERNEL_COLUMNS, [[r.get(c) for c in KERNEL_COLUMNS] for r in rows])
    tracker.table("structure", STRUCTURE_COLUMNS, [[c.row()[k] for k in STRUCTURE_COLUMNS] for c in stats])
    tracker.summary({"/".join(str(c.row().get(k)) for k in TABLE_IDENTITY if k in c.row()) + "/verdict": c.verdict
                     for c in stats})
    if compared and compared.comparisons:
        for png in compared.pngs:
            tracker.image(f"comparison/{png.stem}", png)
        tracker.table("comparisons", COMPARISON_COLUMNS,
                      [[c.row()[k] for k in COMPARISON_COLUMNS] for c in compared.comparisons])
        # the config ids keep apart the pairs of two configurations of one learner (or model, format, scorer)
        tracker.summary({f"comparison/{c.context()}/{c.a} ({c.config_id_a}) vs {c.b} ({c.config_id_b})": c.verdict
                         for c in compared.comparisons})
    tracker.finish()
    return tracker.run_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ntkeval-report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="sweep_dir",
                        help="Hydra multirun dirs (or any dirs of cell runs); several are gathered into one report")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default FIRST_SWEEP_DIR/report)")
    parser.add_argument("--wandb", choices=["offline", "online"], default=None,
                        help="also log a summary run (heatmaps, kernel, statistics) to W&B in the sweep's project "
                             "and group; offline runs are uploaded later with `wandb sync`")
    parser.add_argument("--compare", choices=list(AXES), default=None,
                        help="compare kernels that differ only in this (specificity, difference heatmap, CKA, a "
                             "verdict per pair; comparisons.csv); default: in-context learning against tuning, "
                             "when the sweep has both")
    return parser.parse_args(argv)


def gather(sweep_dirs: list[Path]) -> list[dict]:
    """Every result of every sweep dir; raises DuplicateResult when an identity and pair is found twice."""
    results = [r for d in sweep_dirs for r in load_results(d)]
    check_duplicates(results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Console entry point: write the report, print the kernels and problems, return the exit code."""
    args = parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"ntkeval-report: no such sweep dir: {sweep_dir}", file=sys.stderr)
            return 2
    try:
        results = gather(args.sweep_dirs)
    except DuplicateResult as err:
        print(f"ntkeval-report: {err}", file=sys.stderr)
        return 2
    if not results:
        print(f"ntkeval-report: no result.json found under {' '.join(map(str, args.sweep_dirs))}", file=sys.stderr)
        return 2
    out_dir: Path = args.out or args.sweep_dirs[0] / "report"
    notes: list[str] = []
    questions = [q for r in results for q in question_rows(r)]
    pooled = pooled_results(results, questions)
    tables = kernel_tables(results + pooled)
    try:
        csv_path = write_kernel_csv(results, out_dir / "kernel.csv")
        if pooled:
            write_kernel_csv(pooled, out_dir / "kernel_pooled.csv", POOLED_COLUMNS)
        pngs = plot_kernels(results + pooled, out_dir)
        groups = kernel_groups(results)
        stats = structure_stats(kernel_rows(results) + kernel_rows(pooled), groups, questions=questions)
        write_structure(stats, tables, pngs, out_dir)
        compared = write_comparisons(results + pooled, questions, out_dir, args.compare)
        # the kernel science after the structure: seed variation, simple to complex, comparisons of kernels,
        # learning curves, the predicted kernel against the measured one
        science = {"transfer.csv": write_transfer(kernel_rows(results) + kernel_rows(pooled), questions, groups,
                                                  out_dir),
                   "comparisons.csv": compared.summary_lines(),  # its notes too (pairs skipped, and why)
                   "curves.csv, speed.csv": write_curves(results, out_dir, groups),
                   "predicted.csv": write_predicted(results, out_dir)}
        extra = seed_summary_lines(pooled) + [line for lines in science.values() for line in lines]
        with open(out_dir / "summary.md", "a") as f:
            f.write("".join(f"{line}\n" for line in ["", *extra]) if extra else "")
        problems = [p for d in args.sweep_dirs for p in find_problems(d, [r for r in results if Path(
            r["result_path"]).is_relative_to(d)], notes)]
        text = problems_text(results, problems, notes)
        (out_dir / "problems.txt").write_text(text)
    except OSError as err:  # an unwritable --out dir is the user's to fix: one line, no traceback
        print(f"ntkeval-report: {err}", file=sys.stderr)
        return 2
    for table in tables:
        print(format_table(table) + "\n")
    print("\n".join(c.verdict for c in stats) + "\n")
    if compared.lines():  # the comparisons of kernels, e.g. in-context learning against tuning
        print("\n".join(compared.lines()) + "\n")
    print(text, end="")
    written = (["kernel_pooled.csv"] if pooled else []) + [name for name, lines in science.items() if lines and (
        name != "comparisons.csv" or compared.csv_path)]
    extra = "".join(f", {name}" for name in written)
    print(f"wrote {csv_path}{extra}, structure.csv, summary.md, {len(pngs)} heatmap(s) and problems.txt to {out_dir}")
    if args.wandb:
        run_dir = mirror_to_wandb(args.sweep_dirs[0], out_dir, results, stats, pngs, args.wandb, compared)
        print(f"W&B summary run ({args.wandb}): {run_dir}")
    commands = [c for d in args.sweep_dirs for c in [relaunch_command(d)] if c] if problems else []
    for command in commands:
        print(f"to rerun only the failed, incomplete and missing cells:\n  {command}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
