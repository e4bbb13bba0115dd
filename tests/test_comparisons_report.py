"""ntkeval-report's comparisons of kernels on fake sweep dirs: which kernels pair, comparisons.csv, the difference
heatmaps, the verdict in summary.md and on the terminal, and the notes for kernels that cannot be compared."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ntkeval.report.comparisons import COMPARISON_COLUMNS
from ntkeval.report.kernel_pairs import IN_CONTEXT, TUNED, learner_kind
from ntkeval.report.sweep_report import main
from ntkeval.report.tables import TABLE_IDENTITY

SKILLS = ["add/question", "sub/question", "mul/question", "div/question", "add/symbol", "sub/symbol"]
TARGETS = {"icl": "ntkeval.learners.icl.InContextLearner", "tune": "ntkeval.learners.lora.LoraLearner"}
CONTROLS = {"icl-skill": "icl-standard", "tune-skill": "tune-base", "icl-standard": "base", "tune-base": "base"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_kernel(sweep: Path, learner: str, diagonal: float, model: str = "smollm2", seed: int = 0,
                 skills: list[str] = SKILLS, trains: list[str] | None = None, questions: int = 16,
                 config: bool = True, rng_seed: int = 0, scorer: tuple[str, str | None] = ("exact", None)) -> None:
    """One done cell per train skill: per-question deltas in [-1, 1] with `diagonal` added on the diagonal, the same
    question ids for every learner and model (the same data set and seed), and the kernel rows they average to."""
    rng = np.random.default_rng(rng_seed)
    for train in trains or skills:
        job = sweep / f"{model}_{learner}_{seed}_{scorer[0]}_{train.replace('/', '-')}"
        job.mkdir(parents=True)
        rows, lines = [], []
        for test in skills:
            d = np.clip(rng.normal(0.05 + diagonal * (train == test), 0.15, questions), -1, 1)
            mean, half = float(d.mean()), 2.13 * float(d.std(ddof=1)) / math.sqrt(questions)
            rows.append({"test_skill": test, "n": questions, "p_learner": 0.5 + mean, "p_control": 0.5,
                         "p_base": 0.4, "delta": mean, "ci_low": mean - half, "ci_high": mean + half})
            lines += [json.dumps({"id": f"{test}/test/{q}", "test_skill": test, "delta": float(v)})
                      for q, v in enumerate(d)]
        cell = {"cell_id": f"{model}-{learner}-{seed}-{train}", "model": model, "learner": learner,
                "control": CONTROLS[learner], "dataset": "arith", "test_dataset": "arith", "format": "direct",
                "train_skill": train, "seed": seed, "scorer": scorer[0], "estimate": scorer[1],
                "config_id": f"cfg-{model}-{learner}" + ("" if scorer[0] == "exact" else f"-{scorer[0]}")}
        result = {"status": "done", "cell": cell, "tests": rows, "error": None}
        if config:
            result["config"] = {"learner": {"_target_": TARGETS[learner.split("-")[0]], "name": learner}}
        (job / "result.json").write_text(json.dumps(result))
        (job / "questions.jsonl").write_text("\n".join(lines) + "\n")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def paper_sweep(tmp_path: Path) -> Path:
    """The quickstart's four learners: icl-skill far more skill-specific than tune-skill, and the two controls run
    as learners (compared with the untouched model), which the default comparison leaves out."""
    sweep = tmp_path / "sweep"
    write_kernel(sweep, "icl-skill", 0.35, rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.0, rng_seed=2)
    write_kernel(sweep, "icl-standard", 0.0, rng_seed=3)
    write_kernel(sweep, "tune-base", 0.0, rng_seed=4)
    return sweep


def test_default_report_compares_in_context_learning_with_tuning(paper_sweep: Path, capsys):
    assert main([str(paper_sweep)]) == 0
    out = capsys.readouterr().out
    report = paper_sweep / "report"
    (row,) = read_csv(report / "comparisons.csv")
    assert list(row) == COMPARISON_COLUMNS
    assert (row["axis"], row["a"], row["b"], row["learner"], row["model"], row["seed"]) == (
        "learner", "icl-skill", "tune-skill", "", "smollm2", "0")
    assert (row["config_id_a"], row["config_id_b"], row["n_skills"]) == ("cfg-smollm2-icl-skill",
                                                                          "cfg-smollm2-tune-skill", "6")
    diff, low, high = (float(row[k]) for k in ("diff", "diff_ci_low", "diff_ci_high"))
    assert diff == pytest.approx(float(row["specificity_a"]) - float(row["specificity_b"]))
    assert 0.25 < diff < 0.45 and 0 < low < diff < high
    assert row["interval_method"] == "paired questions" and row["n_questions"] == "16"
    assert float(row["p_value"]) < 0.01 and float(row["specificity_a_p"]) < 0.01
    assert row["verdict"].startswith(f"icl-skill is more skill-specific than tune-skill by {diff:+.3f} "
                                     f"[{low:+.3f}, {high:+.3f}] (p = ")
    assert "kernel similarity CKA = " in row["verdict"]
    assert f"smollm2 · arith · direct · exact · seed 0: {row['verdict']}" in out
    summary = (report / "summary.md").read_text()
    assert "## Comparisons" in summary and f"**{row['verdict']}**" in summary
    image = "diff_smollm2_icl-skill_arith_exact_cfg-smollm2-icl-skill_seed0__vs__tune-skill_cfg-smollm2-tune-skill.png"
    assert f"![difference]({image})" in summary and (report / image).read_bytes()[:8] == PNG_MAGIC
    assert "comparisons.csv" in out.splitlines()[-1]


def test_compare_learner_takes_every_pair_of_learners(paper_sweep: Path):
    assert main([str(paper_sweep), "--compare", "learner"]) == 0
    rows = read_csv(paper_sweep / "report" / "comparisons.csv")
    assert sorted((r["a"], r["b"]) for r in rows) == sorted([
        ("icl-skill", "icl-standard"), ("icl-skill", "tune-base"), ("icl-skill", "tune-skill"),
        ("icl-standard", "tune-base"), ("icl-standard", "tune-skill"), ("tune-base", "tune-skill")])
    alike = next(r for r in rows if (r["a"], r["b"]) == ("icl-standard", "tune-base"))  # neither is specific
    assert alike["verdict"].startswith("no clear difference in skill-specificity between icl-standard and tune-base")
    assert len(list((paper_sweep / "report").glob("diff_*.png"))) == 6


def test_compare_model_pairs_two_models_and_nothing_else(tmp_path: Path, capsys):
    sweep = tmp_path / "sweep"
    write_kernel(sweep, "tune-skill", 0.0, model="smollm2", rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.3, model="tiny", rng_seed=2)
    write_kernel(sweep, "icl-skill", 0.3, model="tiny", rng_seed=3)  # another learner: not a model comparison
    assert main([str(sweep), "--compare", "model"]) == 0
    (row,) = read_csv(sweep / "report" / "comparisons.csv")
    assert (row["axis"], row["a"], row["b"], row["learner"], row["model"]) == ("model", "smollm2", "tiny",
                                                                               "tune-skill", "")
    diff, low, high = (float(row[k]) for k in ("diff", "diff_ci_low", "diff_ci_high"))
    assert low < diff < high < 0  # magnitudes in the verdict: "less ... by 0.3"
    assert row["verdict"].startswith(f"smollm2 is less skill-specific than tiny by {-diff:.3f} "
                                     f"[{-high:.3f}, {-low:.3f}] (p = ")
    assert f"tune-skill · arith · direct · exact · seed 0: {row['verdict']}" in capsys.readouterr().out


def test_compare_scorer_takes_the_head_estimate_with_it(tmp_path: Path):
    sweep = tmp_path / "sweep"
    write_kernel(sweep, "tune-skill", 0.2, rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.2, rng_seed=2, scorer=("ntk", "balanced"))
    assert main([str(sweep), "--compare", "scorer"]) == 0
    (row,) = read_csv(sweep / "report" / "comparisons.csv")
    assert (row["a"], row["b"], row["scorer"], row["estimate"], row["learner"]) == ("exact", "ntk (balanced)", "",
                                                                                    "", "tune-skill")
    assert row["interval_method"] == "paired questions"  # the same questions, scored two ways


def test_seed_pooled_kernels_are_compared_with_each_other(tmp_path: Path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_kernel(sweep, "icl-skill", 0.3, seed=seed, rng_seed=10 + seed)
        write_kernel(sweep, "tune-skill", 0.0, seed=seed, rng_seed=20 + seed)
    assert main([str(sweep)]) == 0
    rows = read_csv(sweep / "report" / "comparisons.csv")
    assert sorted(r["seed"] for r in rows) == ["0", "1", "pooled"]
    pooled = next(r for r in rows if r["seed"] == "pooled")
    # pooled kernels carry no per-question deltas of their own: their entries' intervals, combined by MOVER
    assert pooled["interval_method"] == "MOVER of entries and entries intervals"
    seeds = [float(r["diff"]) for r in rows if r["seed"] != "pooled"]
    assert float(pooled["diff"]) == pytest.approx(sum(seeds) / 2)  # linear in entries, each the mean of its seeds
    # two seeds: the pooled entries' intervals carry seed variation on 1 degree of freedom, wider than one seed's
    widths = {r["seed"]: float(r["diff_ci_high"]) - float(r["diff_ci_low"]) for r in rows}
    assert widths["pooled"] > max(widths["0"], widths["1"])
    assert float(pooled["diff_ci_low"]) < float(pooled["diff"]) < float(pooled["diff_ci_high"])


def test_kernels_that_are_not_square_or_too_small_get_a_note(tmp_path: Path, capsys):
    sweep = tmp_path / "sweep"
    write_kernel(sweep, "icl-skill", 0.3, rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.0, trains=SKILLS[:2], rng_seed=2)  # two train skills of six
    write_kernel(sweep, "icl-skill", 0.3, model="tiny", skills=SKILLS[:2], rng_seed=3)
    write_kernel(sweep, "tune-skill", 0.0, model="tiny", skills=SKILLS[:2], rng_seed=4)
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    report = sweep / "report"
    assert not (report / "comparisons.csv").exists() and not list(report.glob("diff_*.png"))
    notes = [line for line in out.splitlines() if line.startswith("note: ") and "compared" in line]
    assert notes == [
        "note: icl-skill vs tune-skill (smollm2 · arith · direct · exact · seed 0) not compared: tune-skill's kernel "
        "has 2 of its 6 test skills as train skills (at least 3 needed)",
        "note: icl-skill vs tune-skill (tiny · arith · direct · exact · seed 0) not compared: icl-skill's kernel has "
        "only 2 skills (at least 3 needed); tune-skill's kernel has only 2 skills (at least 3 needed)"]
    assert all(n.removeprefix("note: ") in (report / "summary.md").read_text() for n in notes)
    assert main([str(sweep), "--compare", "model"]) == 0  # asked for: the header alone, and why
    assert read_csv(report / "comparisons.csv") == []
    assert "icl-skill's kernel has only 2 skills" not in capsys.readouterr().out  # tiny's pair differs in learner
    assert main([str(sweep), "--compare", "learner"]) == 0
    assert "tune-skill's kernel has 2 of its 6 test skills as train skills" in capsys.readouterr().out


def test_missing_entries_are_compared_on_what_both_kernels_have(tmp_path: Path):
    sweep = tmp_path / "sweep"
    write_kernel(sweep, "icl-skill", 0.3, rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.0, trains=SKILLS[:5], rng_seed=2)  # the sub/symbol cell never ran
    assert main([str(sweep)]) == 0  # no multirun.yaml: nothing says it is missing, but the kernel knows
    (row,) = read_csv(sweep / "report" / "comparisons.csv")
    assert "6 of 36 entries missing in either kernel: every statistic uses the 30 both have" in row["notes"]
    assert "CKA on the 5 of 6 skills complete in both" in row["notes"]
    assert row["verdict"].startswith("icl-skill is more skill-specific than tune-skill")


def test_a_bad_compare_axis_is_one_argparse_line(paper_sweep: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(paper_sweep), "--compare", "dataset"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ntkeval-report: error: argument --compare: invalid choice: 'dataset'")
    assert "learner" in err and "scorer" in err and not (paper_sweep / "report").exists()


def test_learner_kind_reads_the_recorded_class_and_falls_back_on_the_name():
    assert learner_kind({"config": {"learner": {"_target_": "ntkeval.learners.rft.RejectionSampledLearner"}},
                         "cell": {"learner": "icl-looking-name"}}) == TUNED   # a LoRA learner's subclass
    assert learner_kind({"config": {"learner": {"_target_": "ntkeval.learners.icl.InContextLearner"}},
                         "cell": {"learner": "my-demos"}}) == IN_CONTEXT
    assert learner_kind({"config": {"learner": {"_target_": "ntkeval.learners.opro.OproLearner"}},
                         "cell": {"learner": "opro"}}) == "other"
    assert learner_kind({"cell": {"learner": "tune-skill"}}) == TUNED   # written before configs were recorded
    assert learner_kind({"config": {"learner": {"_target_": "no.such.Module"}}, "cell": {"learner": "x"}}) == "other"


def test_identity_columns_follow_the_report_tables():
    assert COMPARISON_COLUMNS[:len(TABLE_IDENTITY) - 1] == [k for k in TABLE_IDENTITY if k != "config_id"]


def test_comparisons_are_mirrored_to_wandb(tmp_path: Path):
    from wandb_offline import read_offline_run

    sweep = tmp_path / "sweep"
    write_kernel(sweep, "icl-skill", 0.35, rng_seed=1)
    write_kernel(sweep, "tune-skill", 0.0, rng_seed=2)
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out), "--wandb", "offline"]) == 0
    (run_dir,) = out.glob("wandb/offline-run-*")
    run = read_offline_run(run_dir)
    (row,) = read_csv(out / "comparisons.csv")
    table = run["tables"]["comparisons"]
    assert table["columns"] == COMPARISON_COLUMNS and len(table["data"]) == 1
    assert table["data"][0][COMPARISON_COLUMNS.index("verdict")] == row["verdict"]
    key = (f"comparison/smollm2 · arith · direct · exact · seed 0/icl-skill ({row['config_id_a']}) vs tune-skill "
           f"({row['config_id_b']})")
    assert run["summary"][key] == row["verdict"]
    images = {k for k, v in run["summary"].items() if isinstance(v, dict) and v.get("_type") == "image-file"}
    assert f"comparison/{Path(next(out.glob('diff_*.png'))).stem}" in images
