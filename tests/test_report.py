"""ntkeval-report on a fake sweep dir laid out as Hydra 1.3's BasicSweeper and the cell code write it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from ntkeval.report.heatmaps import heatmap_figure
from ntkeval.report.sweep_report import (
    KERNEL_COLUMNS,
    find_problems,
    kernel_rows,
    load_results,
    main,
    plot_kernels,
    write_kernel_csv,
)
from ntkeval.report.structure import structure_stats
from ntkeval.report.tables import kernel_tables

TESTS = ["add/question", "sub/question", "mul/question", "div/question"]  # deliberately not alphabetical
TRAINS = ["add/question", "mul/question", "sub/question", "div/question"]  # the sweep's pair.train order
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Hydra 1.3's multirun.yaml, cut to the keys the report reads (checked against a real `-m` run): the experiment
# config's sweeper params, and a command-line override of `learner` that must win over the configured value.
MULTIRUN_YAML = """\
hydra:
  sweep:
    dir: {sweep}
    subdir: ${{learner}}/${{hydra.job.num}}
  sweeper:
    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper
    max_batch_size: null
    params:
      learner: icl-standard
      pair.train: {trains}
  overrides:
    hydra:
    - hydra.mode=MULTIRUN
    task:
    - +experiment=grid
    - learner=icl-skill,tune-skill
    - seed=0
  job:
    name: app
    num: ???
learner: icl-standard
seed: 0
"""


def square(train: str, test: str, learner: str) -> dict:
    """Distinct, hand-checkable numbers per square; CIs exclude 0 exactly on the diagonal."""
    p_control = 0.25
    delta = 0.01 * (TESTS.index(test) + 1) + 0.1 * (TRAINS.index(train) + 1) + (0.5 if learner == "tune-skill" else 0)
    delta = round(delta if train == test else -delta / 10, 6)
    half = 0.05 if train == test else 0.2
    return {"test_skill": test, "n": 16, "p_learner": p_control + delta, "p_control": p_control, "p_base": 0.2,
            "delta": delta, "ci_low": delta - half, "ci_high": delta + half, "acc_learner": 0.5,
            "acc_control": 0.25, "acc_base": 0.25}


def write_job(sweep: Path, num: int, learner: str, train: str, result: dict | None, log: str = "") -> Path:
    """A job dir as Hydra leaves it (.hydra/overrides.yaml in BasicSweeper's order), plus the cell's output."""
    job = sweep / learner / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- learner={learner}\n- pair.train={train}\n- +experiment=grid\n- seed=0\n")
    (job / "app.log").write_text(log)
    if result is not None:
        (job / "result.json").write_text(json.dumps(result, indent=1))
    return job


def cell_result(learner: str, train: str, tests: list[str], status: str = "done", error: str | None = None) -> dict:
    cell = {"cell_id": f"id-{learner}-{train}", "model": "smollm2", "learner": learner, "control": "icl-standard",
            "dataset": "arith", "train_skill": train, "seed": 0, "scorer": "exact", "estimate": None,
            "config_id": "cfg0", "code_version": "0.1.0+gabc123"}
    rows = [square(train, t, learner) for t in tests] if status == "done" else []
    return {"status": status, "cell": cell, "tests": rows, "error": error, "log": f"logs/{learner}-{train}.log"}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Grid: learner {icl-skill, tune-skill} x pair.train {add, mul, sub, div} = jobs #0..#7.

    icl-skill: all done, but the sub cell scored only three test skills (one missing square).
    tune-skill: add done, mul failed, sub started and died (#6), div never started (#7, missing).
    """
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(MULTIRUN_YAML.format(sweep=sweep, trains=",".join(TRAINS)))
    for num, train in enumerate(TRAINS):
        tests = [t for t in TESTS if t != "mul/question"] if train == "sub/question" else TESTS
        write_job(sweep, num, "icl-skill", train, cell_result("icl-skill", train, tests))
    write_job(sweep, 4, "tune-skill", "add/question", cell_result("tune-skill", "add/question", TESTS))
    failed = cell_result("tune-skill", "mul/question", TESTS, "failed", "RuntimeError: CUDA out of memory")
    write_job(sweep, 5, "tune-skill", "mul/question", failed)
    write_job(sweep, 6, "tune-skill", "sub/question", None, log="[INFO] loading\n[INFO] step 40/200 loss 1.93\n\n")
    return sweep


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_kernel_csv_rows_columns_and_values(sweep: Path, tmp_path: Path):
    results = load_results(sweep)
    assert [r["status"] for r in results] == ["done"] * 5 + ["failed"]
    columns, rows = read_csv(write_kernel_csv(results, tmp_path / "k.csv"))
    assert columns == ["model", "learner", "dataset", "test_dataset", "format", "scorer", "estimate", "config_id",
                       "seed", "train_skill", "test_skill", "n", "p_learner", "p_control", "p_base", "delta", "ci_low", "ci_high"] \
        == KERNEL_COLUMNS
    expected = [("icl-skill", tr, te) for tr in sorted(TRAINS) for te in TESTS
                if not (tr == "sub/question" and te == "mul/question")]
    expected += [("tune-skill", "add/question", te) for te in TESTS]
    assert [(r["learner"], r["train_skill"], r["test_skill"]) for r in rows] == expected
    assert {(r["model"], r["dataset"], r["test_dataset"], r["format"], r["n"], r["scorer"], r["estimate"],
             r["config_id"], r["seed"])
            for r in rows} == {("smollm2", "arith", "arith", "direct", "16", "exact", "", "cfg0", "0")}  # old results
    values = KERNEL_COLUMNS[KERNEL_COLUMNS.index("p_learner"):]
    for row in rows:  # values round-trip exactly from result.json
        want = square(row["train_skill"], row["test_skill"], row["learner"])
        assert [float(row[k]) for k in values] == [want[k] for k in values]


def test_kernel_tables_order_and_gaps(sweep: Path):
    icl, tune = kernel_tables(load_results(sweep))
    assert (icl.learner, tune.learner) == ("icl-skill", "tune-skill")
    assert icl.test_skills == TESTS and icl.train_skills == TESTS  # rows follow columns: the diagonal is diagonal
    assert ("sub/question", "mul/question") not in icl.entries and len(icl.entries) == 15
    assert tune.train_skills == ["add/question", "mul/question"] and tune.failed == {"mul/question"}
    texts = [t.get_text() for t in heatmap_figure(icl).axes[0].texts]
    assert texts.count("missing") == 1 and "+0.11*" in texts and "-0.03" in texts  # add->add, sub->add
    tune_texts = [t.get_text() for t in heatmap_figure(tune).axes[0].texts]
    assert tune_texts.count("failed") == 4


def test_answer_formats_are_kernels_of_their_own_named_in_titles_files_and_verdicts(sweep: Path):
    results = load_results(sweep)  # written before answer formats: read as direct
    cot = json.loads(json.dumps([r for r in results if r["cell"]["learner"] == "icl-skill"]))
    for result in cot:
        result["cell"]["format"] = "cot"
    tables = kernel_tables(results + cot)
    assert [(t.learner, t.format) for t in tables] == [("icl-skill", "cot"), ("icl-skill", "direct"),
                                                        ("tune-skill", "direct")]
    assert tables[0].entries == tables[1].entries  # the same numbers, never merged into one kernel
    assert " · cot · " in tables[0].title() and " · cot · " not in tables[1].title()
    assert tables[0].file_stem() == "kernel_smollm2_icl-skill_arith_cot_exact_cfg0_seed0"
    assert tables[1].file_stem() == "kernel_smollm2_icl-skill_arith_exact_cfg0_seed0"  # direct: as before
    verdicts = [c.verdict for c in structure_stats(kernel_rows(results + cot), {})]
    assert any(v.startswith("smollm2 icl-skill cot: ") for v in verdicts)
    assert any(v.startswith("smollm2 icl-skill: ") for v in verdicts)


def test_heatmap_files_are_pngs(sweep: Path, tmp_path: Path):
    paths = plot_kernels(load_results(sweep), tmp_path / "figs")
    assert [p.name for p in paths] == ["kernel_smollm2_icl-skill_arith_exact_cfg0_seed0.png",
                                       "kernel_smollm2_tune-skill_arith_exact_cfg0_seed0.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
        height, width, _ = matplotlib.image.imread(path).shape
        assert width > 400 and height > 300


def test_problems_name_each_failed_incomplete_and_missing_cell(sweep: Path):
    notes: list[str] = []
    problems = find_problems(sweep, load_results(sweep), notes)
    assert notes == []
    assert [(p.kind, p.where) for p in problems] == [
        ("failed", str(sweep / "tune-skill" / "5")),
        ("incomplete", str(sweep / "tune-skill" / "6")),
        ("missing", "grid job #7")]
    failed, incomplete, missing = (p.message for p in problems)
    assert "RuntimeError: CUDA out of memory" in failed and "logs/tune-skill-mul/question.log" in failed
    assert "pair.train=sub/question" in incomplete and "app.log: [INFO] step 40/200 loss 1.93" in incomplete
    assert "learner=tune-skill" in missing and "pair.train=div/question" in missing


def test_main_writes_report_and_exits_1_on_problems(sweep: Path, capsys):
    assert main([str(sweep)]) == 1
    out = capsys.readouterr().out
    report = sweep / "report"
    assert (report / "kernel.csv").is_file()
    assert sorted(p.name for p in report.glob("*.png")) == ["kernel_smollm2_icl-skill_arith_exact_cfg0_seed0.png",
                                                           "kernel_smollm2_tune-skill_arith_exact_cfg0_seed0.png"]
    problems = (report / "problems.txt").read_text().splitlines()
    assert problems[0] == "5 cells done, 1 failed, 1 incomplete, 1 missing"
    assert [line.split()[0] for line in problems[1:]] == ["failed", "incomplete", "missing"]
    assert "5 cells done, 1 failed, 1 incomplete, 1 missing" in out
    assert "+0.11 [+0.06,+0.16]*" in out  # icl-skill add->add in the text matrix
    assert "smollm2 · icl-skill vs icl-standard · arith · exact · config cfg0 · seed 0" in out
    # a second run with --out writes elsewhere and reads no report files as results
    assert main([str(sweep), "--out", str(sweep / "again")]) == 1
    assert (sweep / "again" / "kernel.csv").read_text() == (report / "kernel.csv").read_text()


def test_clean_sweep_exits_0(tmp_path: Path, capsys):
    sweep = tmp_path / "clean"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(MULTIRUN_YAML.format(sweep=sweep, trains="add/question")
                                         .replace("icl-skill,tune-skill", "icl-skill"))
    write_job(sweep, 0, "icl-skill", "add/question", cell_result("icl-skill", "add/question", TESTS))
    assert main([str(sweep)]) == 0
    assert "1 cells done, 0 failed, 0 incomplete, 0 missing" in capsys.readouterr().out


def test_without_multirun_yaml_missing_check_is_skipped(sweep: Path, capsys):
    (sweep / "multirun.yaml").unlink()
    assert main([str(sweep)]) == 1
    out = capsys.readouterr().out
    assert "5 cells done, 1 failed, 1 incomplete, 0 missing" in out
    assert "missing-cell check skipped" in out


def test_bad_sweep_dirs_give_one_line_and_exit_2(tmp_path: Path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"ntkeval-report: no such sweep dir: {tmp_path / 'nope'}\n" and captured.out == ""
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"ntkeval-report: no result.json found under {tmp_path}\n"


def test_console_script_exit_code(tmp_path: Path):
    script = Path(sys.executable).parent / "ntkeval-report"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ntkeval.report.sweep_report"]
    proc = subprocess.run(command + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ntkeval-report: no such sweep dir: {tmp_path / 'nope'}"]


def identity_sweep(root: Path, name: str, cells: list[tuple[dict, list[float]]]) -> Path:
    """A sweep dir of done add/question -> add/question cells; each cell's overrides and per-question deltas."""
    sweep = root / name
    for num, (overrides, deltas) in enumerate(cells):
        cell = {"cell_id": f"id{num}", "model": "tiny", "learner": "icl-skill", "control": "icl-standard",
                "dataset": "arith", "train_skill": "add/question", "seed": 0, "scorer": "exact", "estimate": None,
                "config_id": "cfgA", **overrides}
        mean = sum(deltas) / len(deltas)
        row = {"test_skill": "add/question", "n": len(deltas), "p_learner": 0.5 + mean, "p_control": 0.5,
               "p_base": 0.4, "delta": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1}
        job = sweep / str(num)
        job.mkdir(parents=True)
        (job / "result.json").write_text(json.dumps({"status": "done", "cell": cell, "tests": [row]}))
        (job / "questions.jsonl").write_text("".join(json.dumps(
            {"id": f"add/question/test/{i}", "test_skill": "add/question", "p_learner": 0.5 + d, "p_control": 0.5,
             "delta": d}) + "\n" for i, d in enumerate(deltas)))
    return sweep


def test_rows_that_differ_in_seed_scorer_or_config_are_never_merged(tmp_path: Path):
    sweep = identity_sweep(tmp_path, "s", [({"seed": 0}, [0.1, 0.3]), ({"seed": 1}, [0.2, 0.2]),
                                           ({"scorer": "ntk", "estimate": "balanced"}, [0.0, 0.1]),
                                           ({"config_id": "cfgB"}, [0.5, 0.5])])
    results = load_results(sweep)
    tables = kernel_tables(results)
    assert len(tables) == 4 and all(len(t.entries) == 1 for t in tables)
    deltas = sorted(t.entries[("add/question", "add/question")]["delta"] for t in tables)
    assert deltas == pytest.approx([0.05, 0.2, 0.2, 0.5])
    _, rows = read_csv(write_kernel_csv(results, tmp_path / "k.csv"))
    assert sorted((r["seed"], r["scorer"], r["estimate"], r["config_id"]) for r in rows) == [
        ("0", "exact", "", "cfgA"), ("0", "exact", "", "cfgB"), ("0", "ntk", "balanced", "cfgA"),
        ("1", "exact", "", "cfgA")]


def test_cells_differing_only_in_seed_are_pooled_over_seeds_and_questions(tmp_path: Path, capsys):
    sweep = identity_sweep(tmp_path, "s", [({"seed": 0}, [0.1, 0.3, 0.2]), ({"seed": 1}, [0.2, 0.4, 0.3]),
                                           ({"seed": 2}, [0.0, 0.2, 0.1]), ({"config_id": "cfgB"}, [0.9, 0.9, 0.9])])
    assert main([str(sweep)]) == 0
    _, pooled = read_csv(sweep / "report" / "kernel_pooled.csv")
    (row,) = pooled  # cfgB has one seed: nothing to pool
    assert (row["config_id"], row["seed"], row["seeds"], row["n_seeds"], row["n"]) == ("cfgA", "pooled", "0 1 2",
                                                                                        "3", "9")
    assert float(row["delta"]) == pytest.approx(0.2)  # equal questions per seed: the mean of the seed means
    assert float(row["ci_low"]) < 0.2 < float(row["ci_high"])
    assert "seeds pooled" in capsys.readouterr().out
    assert (sweep / "report" / "kernel_tiny_icl-skill_arith_exact_cfgA_seedpooled.png").is_file()


def test_the_same_identity_in_two_sweep_dirs_is_an_error_naming_both(tmp_path: Path, capsys):
    first = identity_sweep(tmp_path, "a", [({"seed": 0}, [0.1, 0.3])])
    second = identity_sweep(tmp_path, "b", [({"seed": 1}, [0.2, 0.2]), ({"seed": 0}, [0.0, 0.0])])
    assert main([str(first), str(second)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(first / "0" / "result.json") in err[0] and str(second / "1" / "result.json") in err[0]
    third = identity_sweep(tmp_path, "c", [({"seed": 1}, [0.2, 0.2])])
    assert main([str(first), str(third)]) == 0  # different seeds gather into one report, pooled
    assert (first / "report" / "kernel_pooled.csv").is_file()
