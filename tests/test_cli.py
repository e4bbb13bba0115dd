"""The `ntkeval` command end to end on tiny models: a multirun writes every cell, W&B offline runs hold what was
logged, the report gathers the sweep, a failing cell keeps its siblings' results, and bad input fails in one line."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wandb_offline import read_offline_run

FAST = ["model=tiny", "dataset.n_train=8", "dataset.n_test=4", "tuning.steps=3", "tuning.batch_size=4",
        "learner.demos=2"]


def ntkeval(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One real multirun: 2 learners x 2 train skills on tiny, W&B offline; shared by the tests below."""
    root = tmp_path_factory.mktemp("sweep")
    sweep_dir = root / "multirun"
    done = ntkeval("-m", "learner=icl-skill,tune-skill", "pair.train=add/question,mul/symbol", f"cache_dir={root}/c",
                   "pair.test=[add/question,mul/symbol]", "logger=wandb", *[o for o in FAST if "demos" not in o],
                   f"hydra.sweep.dir={sweep_dir}", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_dir


def _results(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.rglob("result.json"))]


def test_multirun_writes_every_cell(sweep):
    results = _results(sweep)
    cells = {(r["cell"]["learner"], r["cell"]["train_skill"]) for r in results}
    assert cells == {(lrn, s) for lrn in ("icl-skill", "tune-skill") for s in ("add/question", "mul/symbol")}
    for r in results:
        assert r["status"] == "done" and r["cell"]["model"] == "tiny" and r["cell"]["code_version"]
        assert [t["test_skill"] for t in r["tests"]] == ["add/question", "mul/symbol"]
        keys = {"n", "p_learner", "p_control", "p_base", "delta", "ci_low", "ci_high", "acc_learner", "acc_control"}
        assert all(keys <= set(t) for t in r["tests"])
    job_dirs = {p.parent for p in sweep.rglob("result.json")}
    assert all(len(list(d.glob("questions.jsonl"))) == 1 for d in job_dirs)


def test_wandb_offline_runs_hold_the_logged_keys(sweep):
    runs = sorted(sweep.rglob("offline-run-*"))
    assert len(runs) == 4
    for run_dir in runs:
        run = read_offline_run(run_dir)
        result = json.loads((run_dir.parents[1] / "result.json").read_text())
        assert run["run_id"] == result["cell"]["cell_id"]
        assert run["group"] == sweep.name and run["job_type"] == result["cell"]["learner"]
        assert run["config"]["model"]["name"] == "tiny"
        first = result["tests"][0]
        assert run["summary"][f"{first['test_skill']}/delta"] == pytest.approx(first["delta"])
        assert run["tables"]["questions"]["columns"][:2] == ["id", "test_skill"]
        losses = [row["train/loss"] for row in run["history"] if "train/loss" in row]
        assert len(losses) == (3 if result["cell"]["learner"] == "tune-skill" else 0)


def test_report_gathers_the_sweep(sweep, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "ntkeval.report.sweep_report", str(sweep), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader((out / "kernel.csv").open()))
    assert len(rows) == 8
    assert list(rows[0]) == ["model", "learner", "dataset", "test_dataset", "format", "scorer", "estimate",
                             "config_id", "seed", "train_skill", "test_skill", "n", "p_learner", "p_control", "p_base", "delta", "ci_low", "ci_high"]
    results = {(r["cell"]["learner"], r["cell"]["train_skill"]): r["cell"] for r in _results(sweep)}
    for row in rows:  # each row names the result it came from
        cell = results[(row["learner"], row["train_skill"])]
        assert (row["scorer"], row["seed"], row["config_id"]) == ("exact", "0", cell["config_id"])
    tune = {r["cell"]["config_id"] for r in _results(sweep) if r["cell"]["learner"] == "tune-skill"}
    assert len(tune) == 1 and len(tune.pop()) == 10  # one configuration across train skills
    pngs = sorted(p.name for p in out.glob("*.png"))
    stems = {lrn: f"kernel_tiny_{lrn}_arith_exact_{results[(lrn, 'add/question')]['config_id']}_seed0"
             for lrn in ("icl-skill", "tune-skill")}
    assert pngs == [f"{stems['icl-skill']}.png", f"{stems['tune-skill']}.png"]
    assert "4 cells done" in done.stdout
    structure = list(csv.DictReader((out / "structure.csv").open()))
    assert sorted(r["learner"] for r in structure) == ["icl-skill", "tune-skill"]
    assert all(r["verdict"] in done.stdout for r in structure)
    summary = (out / "summary.md").read_text()
    assert f"![kernel]({stems['tune-skill']}.png)" in summary and structure[0]["verdict"] in summary


def test_a_failing_cell_keeps_its_siblings_results(tmp_path):
    # codellama cannot load here (no hub, no such local dir): that cell fails, the tiny cell still finishes.
    done = ntkeval("-m", "model=tiny,codellama", "pair.test=add/question", "learner=icl-skill", "logger=none",
                   "dataset.n_test=4", "learner.demos=2", f"hydra.sweep.dir={tmp_path / 'sw'}", cwd=tmp_path)
    assert done.returncode != 0
    results = {r["cell"]["model"]: r for r in _results(tmp_path / "sw")}
    assert results["tiny"]["status"] == "done"
    assert results["codellama"]["status"] == "failed"
    assert results["codellama"]["error"] and Path(results["codellama"]["log"]).name.endswith(".log")
    assert results["codellama"]["error"] in Path(results["codellama"]["log"]).read_text()
    summary = done.stderr[done.stderr.index("\nsweep "):]
    assert "1 cells done, 1 failed or missing" in summary
    assert "failed" in summary and "1_codellama_icl-skill_add-question" in summary and "OSError" in summary
    report = subprocess.run([sys.executable, "-m", "ntkeval.report.sweep_report", str(tmp_path / "sw")], capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 1 and "failed" in report.stdout
    command = report.stdout.split("to rerun only the failed, incomplete and missing cells:\n")[1].split()
    assert command[:2] == ["ntkeval", "-m"] and f"hydra.sweep.dir={tmp_path / 'sw'}" in command
    rerun = ntkeval(*command[1:], cwd=tmp_path)  # the tiny cell is not redone; codellama still cannot load
    assert rerun.returncode != 0
    assert (rerun.stdout + rerun.stderr).count("nothing recomputed") == 1


def test_relaunching_a_finished_sweep_recomputes_nothing(sweep, tmp_path):
    again = ntkeval("-m", "learner=icl-skill,tune-skill", "pair.train=add/question,mul/symbol",
                    f"cache_dir={sweep.parent}/c", "pair.test=[add/question,mul/symbol]", "logger=wandb",
                    *[o for o in FAST if "demos" not in o], f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (again.stdout + again.stderr).count("nothing recomputed") == 4
    assert "4 cells done, 0 failed or missing" in again.stderr
    # a new sweep dir: the cells run again, but every stage comes from the cache
    fresh = ntkeval("learner=tune-skill", "pair.train=add/question", f"cache_dir={sweep.parent}/c",
                    "pair.test=[add/question,mul/symbol]", "logger=none", *[o for o in FAST if "demos" not in o],
                    cwd=tmp_path)
    assert fresh.returncode == 0
    out = fresh.stdout + fresh.stderr
    assert "stages: 0 computed" in out and "tuning tune" not in out and "scoring " not in out


def test_preflight_lists_every_problem_of_the_grid_and_runs_nothing(tmp_path):
    done = ntkeval("-m", "learner=icl-skill,tune-skill", "pair.train=add/questio,mul/q,add/word", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("ntkeval: error: 2 problems in the grid, nothing was run:")
    assert "'add/questio'" in done.stderr and "'mul/q'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_dry_run_counts_the_work_after_deduplication(tmp_path):
    done = ntkeval("-m", "model=tiny", "learner=icl-standard,icl-skill,tune-base,tune-skill",
                   "pair.train=add/question,mul/question", "pair.test=[add/question,mul/question,add/symbol]",
                   "dry_run=true", f"cache_dir={tmp_path}/c", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "8 cells; after de-duplication:" in done.stdout
    # 2 train skills x (tune-base + tune-skill) = 4 tunings, however many cells share them
    assert "tunings: 4 to run, 0 cached" in done.stdout
    # 3 test skills x (base 1 + icl-standard 1 + icl-skill 2 + tune-base 2 + tune-skill 2) = 24 score sets
    assert "scorings (role x test skill): 24 to run, 0 cached" in done.stdout
    assert not (tmp_path / "outputs").exists()


def test_dry_run_counts_a_learning_curves_scorings_and_no_extra_tuning(tmp_path):
    done = ntkeval("-m", "model=tiny", "learner=icl-skill,tune-skill", "tuning.steps=4", "learner.curve=[2,4]",
                   "pair.train=add/question", "pair.test=[add/question,mul/question]", "dry_run=true",
                   f"cache_dir={tmp_path}/c", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # tunings: tune-skill and tune-base at 4 steps; their 2-step adapters are snapshots of those runs
    assert "tunings: 2 to run, 0 cached" in done.stdout
    # 2 test skills x (base 1 + icl-standard 1 + icl-skill 1 + tune-base 1 + tune-skill 1 = 5 main score sets,
    # + icl curve (8 demonstrations in full): sizes 2 and 4, 2 roles each,
    # + tune curve: size 2 (2 roles), size 4 = the main ones) = 2 x 11
    assert "scorings (role x test skill): 22 to run, 0 cached" in done.stdout


@pytest.mark.parametrize("args, bad, choice", [
    (["model=gpt5"], "'gpt5'", "codellama"),
    (["learner=icl"], "'icl'", "icl-skill"),
    (["pair.train=add/speech"], "'add/speech'", "add/word"),
    (["pair.test=[add,bogus]"], "'bogus'", "mul/symbol"),
    (["-m", "learner=icl-skill,tune"], "'tune'", "tune-skill"),
    (["logger.mode=offlne"], "'offlne'", "offline"),
    (["pair.train=[add"], "[add", "override_grammar"),
    (["nosuchkey=1"], "'nosuchkey'", "learner"),
    (["scorer=exactly"], "'exactly'", "ntk"),
    (["scorer=ntk", "learner=icl-standard"], "learner=icl-standard", "icl-skill"),
    (["-m", "scorer=ntk", "learner=icl-skill,tune-base"], "learner=tune-base", "tune-skill"),
    (["scorer=sampled", "scorer.n=1"], "scorer.n=1", "integer >= 2"),
    (["scorer=ntk", "scorer.n=0"], "scorer.n=0", "integer >= 2"),
    (["scorer=sampled", "scorer.temperature=-0.5"], "scorer.temperature=-0.5", "number > 0"),
    (["scorer=sampled", "scorer.top_p=1.5"], "scorer.top_p=1.5", "(0, 1]"),
    (["scorer=ntk", "scorer.temperature=0.7"], "scorer.temperature=0.7", "1.0"),
    (["scorer=ntk", "scorer.estimates=[importance,magic]"], "'magic'", "balanced"),
])
def test_bad_input_fails_in_one_line_before_any_model_loads(tmp_path, args, bad, choice):
    done = ntkeval(*args, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntkeval: error:"), done.stderr
    assert bad in lines[0] and choice in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "outputs").exists()  # nothing ran


def test_report_logs_a_summary_run_to_wandb_in_the_sweeps_group(sweep, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "ntkeval.report.sweep_report", str(sweep), "--out", str(out), "--wandb",
                           "offline"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = out.glob("wandb/offline-run-*")
    run = read_offline_run(run_dir)
    cell_run = read_offline_run(next(sweep.rglob("offline-run-*")))
    assert (run["group"], run["project"]) == (cell_run["group"], cell_run["project"])
    assert run["job_type"] == "report"
    images = {k for k, v in run["summary"].items() if isinstance(v, dict) and v.get("_type") == "image-file"}
    config = {r["cell"]["learner"]: r["cell"]["config_id"] for r in _results(sweep)}
    assert images == {f"kernel/kernel_tiny_{lrn}_arith_exact_{config[lrn]}_seed0" for lrn in ("icl-skill", "tune-skill")}
    assert len(run["tables"]["kernel"]["data"]) == 8
    assert [row[1] for row in run["tables"]["structure"]["data"]] == ["icl-skill", "tune-skill"]
