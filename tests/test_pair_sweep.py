"""pair.train=all, a group or a list under -m: one job per skill in the data set's order, the same jobs in the dry
run, in what the sweeper launches (grid.yaml) and in what the report reads back; a single run keeps its one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hydra_plugins.ntkeval_sweeper import GRID_FILE as SWEEPER_GRID_FILE
from ntkeval.data.arith import SKILLS
from ntkeval.pair_sweep import expand_jobs, skill_override
from ntkeval.report.sweep_grid import GRID_FILE, expand_grid, find_problems
from ntkeval.report.sweep_report import load_results

FAST = ["model=tiny", "logger=none", "dataset.n_train=2", "dataset.n_test=2", "learner.demos=1"]


def ntkeval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def dry_cells(*args: str, cwd: Path) -> list[tuple[str, str]]:
    """(learner, train skill) of every cell the dry run prints, in order."""
    done = ntkeval("-m", *args, "dry_run=true", *FAST, f"cache_dir={cwd}/c", cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split() for line in done.stdout.splitlines() if line.startswith("cell: ")]
    return [(parts[2], parts[4].removeprefix("train=")) for parts in lines]


def test_expansion_replaces_the_selector_in_place_and_keeps_single_skills_as_written():
    jobs = [["learner=a", "pair.train=all"], ["learner=b", "pair.train=add/word"], ["learner=c"]]
    named = {"all": ["add/word", "mul/word"], "add/word": ["add/word"]}
    def train(job):
        return named[next((o.split("=")[1] for o in job if o.startswith("pair.train=")), "add/word")]
    assert expand_jobs(jobs, train) == [
        ["learner=a", "pair.train=add/word"], ["learner=a", "pair.train=mul/word"],
        ["learner=b", "pair.train=add/word"],   # already one skill: untouched
        ["learner=c", "pair.train=add/word"]]   # from the config: appended
    assert skill_override("fractions/add") == "pair.train=fractions/add"
    assert skill_override("my skill, 2") == "pair.train='my skill, 2'" and skill_override("true") == "pair.train='true'"


def test_all_a_group_and_a_list_become_one_job_per_skill_in_the_data_sets_order(tmp_path):
    assert dry_cells("pair.train=all", cwd=tmp_path) == [("icl-skill", s) for s in SKILLS]
    formats = ("question", "instruction", "symbol", "word")
    assert dry_cells("learner=icl-skill,icl-standard", "pair.train=add", cwd=tmp_path) == [
        (lrn, f"add/{f}") for lrn in ("icl-skill", "icl-standard") for f in formats]  # skills vary fastest
    listed = dry_cells("pair.train=[add/question,word]", cwd=tmp_path)
    assert listed == [("icl-skill", s) for s in ("add/question", "add/word", "sub/word", "mul/word", "div/word",
                                                 "ops/word", "cplex/word")]


def test_a_single_run_naming_several_skills_is_one_line(tmp_path):
    done = ntkeval("pair.train=add", *FAST, f"cache_dir={tmp_path}/c", cwd=tmp_path)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "pair.train='add' names 4 skills; a cell trains on exactly one" in line
    unknown = ntkeval("-m", "pair.train=ad", *FAST, f"cache_dir={tmp_path}/c", cwd=tmp_path)
    assert unknown.returncode == 2 and "pair.train: unknown skill 'ad'" in unknown.stderr


@pytest.fixture(scope="module")
def group_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    done = ntkeval("-m", "pair.train=[mul,add/word]", "pair.test=[add/word,mul/word]", "scorer=exact", *FAST,
                   f"cache_dir={root}/c", f"hydra.sweep.dir={root}/sweep", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "sweep"


def test_the_sweeper_launches_the_expanded_grid_and_the_report_reads_it_back(group_sweep):
    assert GRID_FILE == SWEEPER_GRID_FILE
    expected = ["add/word", "mul/question", "mul/instruction", "mul/symbol", "mul/word"]
    grid = expand_grid(group_sweep, notes := [])
    trains = [next(o for o in job if o.startswith("pair.train=")) for job in grid]
    assert notes == [] and trains == [f"pair.train={s}" for s in expected]
    results = load_results(group_sweep)
    assert sorted(r["cell"]["train_skill"] for r in results) == sorted(expected)
    assert find_problems(group_sweep, results, notes=[]) == []  # every grid job has its job dir: none missing
    recorded = results[0]["skill_groups"]
    assert recorded["deep"] == "operation" and recorded["surface"] == "format"
    assert set(recorded["skills"]) == {results[0]["cell"]["train_skill"], "add/word", "mul/word"}
    assert json.loads((group_sweep / "0_tiny_icl-skill_add-word" / "result.json").read_text())["status"] == "done"
