"""Cross-data-set cells: the train skill from one data set, the test skills from another (dataset@pair.test_dataset).

What is checked: the test questions really come from the test data set; the cell's identity, config_id, cell id and
stage keys hold the test data set (and today's keys are unchanged without one); the untouched model's scores are
shared with the test data set's own cells while adapted roles are keyed by the data set they adapted on; bad input
is one line before anything loads; the report keeps cross kernels apart and names both data sets.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.data.khanskill import KhanSkillDataset
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.report.sweep_report import load_results, write_kernel_csv
from ntkeval.report.tables import kernel_tables
from ntkeval.scorers.base import Stage
from ntkeval.scorers.exact import SCORES, ExactScorer
from ntkeval.tracking.base import NullTracker

REPO = Path(__file__).resolve().parents[1]
KHAN_TESTS = ["whole-numbers/add-within-1000", "fractions/simplify-fraction"]


def cell_for(tmp_path: Path, learner, test_dataset=None, tests=KHAN_TESTS, train_data=None, cache="cache") -> Cell:
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner,
                dataset=train_data or ArithDataset(seed=0, n_train=8, n_test=4), train_skill="add/question",
                test_skills=list(tests), test_dataset=test_dataset, scorer=ExactScorer(batch_size=4),
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / cache),
                out_dir=tmp_path / f"out-{len(list(tmp_path.iterdir()))}")


def khan(n_test: int = 3) -> KhanSkillDataset:
    return KhanSkillDataset(seed=0, n_train=4, n_test=n_test)


def icl() -> InContextLearner:
    return InContextLearner(name="icl-skill", demos=2, source="skill")


def test_test_questions_come_from_the_test_data_set(tmp_path):
    test_data = khan(n_test=3)
    cell = cell_for(tmp_path, icl(), test_data)
    result = run_cell(cell, NullTracker())
    assert result["cell"]["dataset"] == "arith" and result["cell"]["test_dataset"] == "khanskill"
    assert [(r["test_skill"], r["n"]) for r in result["tests"]] == [(s, 3) for s in KHAN_TESTS]
    questions = [json.loads(line) for line in (cell.out_dir / "questions.jsonl").read_text().splitlines()]
    assert [q["id"] for q in questions] == [e.id for s in KHAN_TESTS for e in test_data.test(s)]
    # the skill groups recorded are the test data set's (domains), for the test skills
    assert set(result["skill_groups"]["skills"]) == set(KHAN_TESTS)
    assert result["skill_groups"]["deep"] == "domain"


def test_keys_hold_the_test_data_set_and_stay_as_before_without_one(tmp_path):
    # without a test data set the ids are today's (tests/test_golden.py freezes them too): no key mentions one
    plain = cell_for(tmp_path, icl(), None, tests=["add/question"])
    assert plain.identity()["test_dataset"] == "arith" and plain.test_dataset_key() == {}
    assert "test_dataset" not in str(plain.stage_parts(Stage(SCORES, plain.roles().learner), "add/question"))
    cross_small, cross_large = cell_for(tmp_path, icl(), khan(3)), cell_for(tmp_path, icl(), khan(5))
    assert cross_small.cell_id() != plain.cell_id() and cross_small.config_id() != plain.config_id()
    # the test data set's settings are part of the cell's id and its configuration
    assert cross_small.cell_id() != cross_large.cell_id()
    assert cross_small.config_id() != cross_large.config_id()
    # stage keys: the scoring stage's data set is the test data set; adapted roles add the train data set
    roles = cross_small.roles()
    base = cross_small.stage_parts(Stage(SCORES, roles.base), KHAN_TESTS[0])
    learner = cross_small.stage_parts(Stage(SCORES, roles.learner), KHAN_TESTS[0])
    assert base["dataset"] == khan(3).identity() and "train_dataset" not in base
    assert learner["dataset"] == khan(3).identity() and learner["train_dataset"] == cross_small.dataset.identity()
    other_train = cell_for(tmp_path, icl(), khan(3), train_data=ArithDataset(seed=0, n_train=6, n_test=4))
    assert other_train.stage_parts(Stage(SCORES, roles.learner), KHAN_TESTS[0]) != learner
    assert other_train.stage_parts(Stage(SCORES, other_train.roles().base), KHAN_TESTS[0]) == base


def test_cross_cells_of_one_configuration_share_a_config_id_across_seeds(tmp_path):
    """The test data set follows the cell's seed (its ${seed} default) like the train data set, so the seeds of one
    configuration pool in the report; a test data set with a seed of its own is another configuration."""
    def cross(seed, test_seed=None):
        cell = cell_for(tmp_path, icl(), KhanSkillDataset(seed=seed if test_seed is None else test_seed, n_train=4,
                                                          n_test=3),
                        train_data=ArithDataset(seed=seed, n_train=8, n_test=4))
        cell.seed = seed
        return cell
    assert cross(0).config_id() == cross(1).config_id()
    assert cross(0).cell_id() != cross(1).cell_id()
    assert cross(1, test_seed=7).config_id() != cross(1).config_id()


def test_the_train_data_set_named_as_test_data_set_is_the_plain_cell(compose_config, tmp_path):
    from omegaconf import open_dict

    from ntkeval.build import build_cell

    def build(*overrides):
        cfg = compose_config("model=tiny", *overrides)
        with open_dict(cfg):
            del cfg["hydra"]  # the job's runtime dirs, resolved only inside a running job
        return build_cell(cfg, tmp_path)

    plain = build()
    same = build("dataset@pair.test_dataset=arith")
    other = build("dataset@pair.test_dataset=arith", "pair.test_dataset.n_test=5")
    assert same.test_dataset is None and (same.cell_id(), same.config_id()) == (plain.cell_id(), plain.config_id())
    assert other.test_dataset is not None and other.cell_id() != plain.cell_id()


def test_untouched_scores_are_shared_with_the_test_data_sets_own_cells(tmp_path):
    cross = cell_for(tmp_path, icl(), khan(3))
    run_cell(cross, NullTracker())
    native = Cell(model=TinyModel(name="tiny", arch="llama"), learner=icl(), dataset=khan(3),
                  train_skill=KHAN_TESTS[1], test_skills=list(KHAN_TESTS), scorer=ExactScorer(batch_size=4),
                  fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "cache"), out_dir=tmp_path / "native")
    result = run_cell(native, NullTracker())
    # the base role's scores of both test skills come from the cross cell; the learner and control are new
    assert result["cache"]["hits"].get(SCORES) == len(KHAN_TESTS)
    cross_again = cell_for(tmp_path, icl(), khan(3))
    again = run_cell(cross_again, NullTracker())
    assert again["cache"]["misses"].get(SCORES, 0) == 0 and again["tests"] == run_cell(cross, NullTracker())["tests"]


def test_a_tuned_cross_cell_trains_on_the_train_data_set(tmp_path):
    learner = LoraLearner(name="tune-skill", answers="correct", steps=2, batch_size=2, lr=1e-2)
    cell = cell_for(tmp_path, learner, khan(2))
    texts = learner.training_texts(cell.context())
    assert texts and all("+" in prompt or "add" in prompt.lower() or "sum" in prompt.lower() for prompt, _ in texts)
    result = run_cell(cell, NullTracker())
    assert [r["test_skill"] for r in result["tests"]] == KHAN_TESTS


def ntkeval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", *args, "logger=none"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("args, expected", [
    (["pair.test_dataset=khanskill"],
     "pair.test_dataset is chosen as a config group: dataset@pair.test_dataset=<option>"),
    (["dataset@pair.test_dataset=khanskil"], "khanskil"),
    (["dataset@pair.test_dataset=khanskill", "pair.test=add/question"],
     "pair.test (of pair.test_dataset, khanskill): unknown skill 'add/question'"),
    (["dataset@pair.test_dataset=khanskill", "pair.test_dataset.n_test=0"], "pair.test_dataset.n_test=0"),
])
def test_bad_input_is_one_line_before_anything_loads(tmp_path, args, expected):
    done = ntkeval(*args, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_the_command_line_runs_a_cross_cell_and_the_report_keeps_it_apart(tmp_path):
    run = tmp_path / "run"
    done = ntkeval("model=tiny", "dataset@pair.test_dataset=khanskill", f"pair.test=[{','.join(KHAN_TESTS)}]",
                   "pair.test_dataset.n_test=3", "dataset.n_train=8", f"cache_dir={tmp_path / 'cache'}",
                   f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["cell"]["test_dataset"] == "khanskill" and [r["n"] for r in result["tests"]] == [3, 3]
    results = load_results(tmp_path)
    rows = list(__import__("csv").DictReader(open(write_kernel_csv(results, tmp_path / "k.csv"))))
    assert {(r["dataset"], r["test_dataset"]) for r in rows} == {("arith", "khanskill")}
    (table,) = kernel_tables(results)
    assert "arith -> khanskill" in table.title() and "to-khanskill" in table.file_stem()


def test_results_written_before_cross_cells_read_as_their_own_data_set(tmp_path):
    job = tmp_path / "0"
    job.mkdir()
    cell = {"model": "m", "learner": "icl-skill", "control": "icl-standard", "dataset": "arith",
            "train_skill": "add/question", "seed": 0, "scorer": "exact", "config_id": "c"}
    row = {"test_skill": "add/question", "n": 4, "delta": 0.1, "ci_low": 0.0, "ci_high": 0.2}
    (job / "result.json").write_text(json.dumps({"status": "done", "cell": cell, "tests": [row]}))
    (result,) = load_results(tmp_path)
    assert result["cell"]["test_dataset"] == "arith"
    (table,) = kernel_tables([result])
    assert not table.crosses() and "to-" not in table.file_stem()
