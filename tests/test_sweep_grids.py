"""Several grids in one sweep (hydra.sweeper.grids): what the sweeper launches, what the preflight checks and what
grid.yaml records are the same jobs, in the order written; the command line wins over params and grids alike."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from ntkeval.errors import UserError
from ntkeval.pair_sweep import grid_jobs

EXPERIMENT = """\
# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    params:
      seed: 0,1
    grids:
      icl:
        learner: icl-skill
        pair.train: add/question,mul/question
      tuned:
        learner: tune-skill
        pair.train: add/question
pair:
  test: [add/question, mul/question]
dataset:
  n_test: 2
  n_train: 8
tuning:
  steps: 2
  batch_size: 4
"""


def test_grids_concatenate_their_products_in_order_and_the_command_line_wins():
    parser = OverridesParser.create()
    grids = {"a": {"learner": "icl-skill", "pair.train": "add/question,mul/question"},
             "b": {"learner": "tune-skill"}}
    jobs = grid_jobs(parser, {"seed": "0,1"}, grids, ["model=tiny"])
    assert jobs == [["seed=0", "learner=icl-skill", "pair.train=add/question", "model=tiny"],
                    ["seed=0", "learner=icl-skill", "pair.train=mul/question", "model=tiny"],
                    ["seed=1", "learner=icl-skill", "pair.train=add/question", "model=tiny"],
                    ["seed=1", "learner=icl-skill", "pair.train=mul/question", "model=tiny"],
                    ["seed=0", "learner=tune-skill", "model=tiny"],
                    ["seed=1", "learner=tune-skill", "model=tiny"]]
    # the command line replaces a value of params and of every grid (Hydra's rule for params)
    assert grid_jobs(parser, {"seed": "0,1"}, grids, ["seed=7", "learner=tune-base"]) == \
        [["seed=7", "learner=tune-base", "pair.train=add/question"],
         ["seed=7", "learner=tune-base", "pair.train=mul/question"], ["seed=7", "learner=tune-base"]]
    # without grids: exactly Hydra's basic sweep of params and the command line
    assert grid_jobs(parser, {"seed": "0,1"}, None, ["learner=a,b"]) == \
        [["seed=0", "learner=a"], ["seed=0", "learner=b"], ["seed=1", "learner=a"], ["seed=1", "learner=b"]]


def test_an_empty_grid_is_a_one_line_error():
    with pytest.raises(UserError, match=r"hydra.sweeper.grids.empty is invalid"):
        grid_jobs(OverridesParser.create(), {}, {"empty": {}}, [])


def ntkeval(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "twogrids.yaml").write_text(EXPERIMENT)
    return subprocess.run([sys.executable, "-m", "ntkeval", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                           "experiment=twogrids", "model=tiny", "logger=none", f"cache_dir={tmp_path / 'cache'}",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_the_preflight_plans_and_the_sweeper_launches_the_same_jobs(tmp_path):
    planned = ntkeval(tmp_path, "dry_run=true")
    assert planned.returncode == 0, planned.stderr[-2000:]
    cells = [line for line in planned.stdout.splitlines() if line.startswith("cell:")]
    assert [(c.split()[2], c.split()[4], c.split()[-1]) for c in cells] == [
        ("icl-skill", "train=add/question", "seed=0"), ("icl-skill", "train=mul/question", "seed=0"),
        ("icl-skill", "train=add/question", "seed=1"), ("icl-skill", "train=mul/question", "seed=1"),
        ("tune-skill", "train=add/question", "seed=0"), ("tune-skill", "train=add/question", "seed=1")]
    sweep = tmp_path / "sweep"
    done = ntkeval(tmp_path, f"hydra.sweep.dir={sweep}", "seed=3")
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = yaml.safe_load((sweep / "grid.yaml").read_text())
    assert [(j[0], j[1], j[2]) for j in jobs] == [("seed=3", "learner=icl-skill", "pair.train=add/question"),
                                                  ("seed=3", "learner=icl-skill", "pair.train=mul/question"),
                                                  ("seed=3", "learner=tune-skill", "pair.train=add/question")]
    assert len(list(sweep.glob("*/result.json"))) == 3


def test_a_bad_value_inside_a_grid_is_caught_before_anything_runs(tmp_path):
    done = ntkeval(tmp_path, "hydra.sweeper.grids.tuned.learner=tune-skil", f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "tune-skil" in lines[0] and "tune-skill" in lines[0], done.stderr
    assert not (tmp_path / "s").exists()
