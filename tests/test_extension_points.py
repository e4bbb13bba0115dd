"""A new learner, scorer or data set is one module and one YAML: the toys of tests/toy_extensions.py, each wired in by
one YAML in a config dir of the user's own (hydra.searchpath), run as a real cell on the tiny model, with nothing
under src/ or conf/ added, and the numbers of result.json checked against values worked out by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent  # where toy_extensions lives: the user's module on the Python path

YAMLS = {  # group -> the one YAML that adds the option "toy" to it
    "learner": "_target_: toy_extensions.PrefixLearner\nname: prefix\nshots: 2              # solved examples\n"
               "control_name: prefix-control\n",
    "scorer": "_target_: toy_extensions.GreedyScorer\nbatch_size: 8         # sequences per forward pass\n",
    "dataset": "_target_: toy_extensions.ToyCounting\nn_train: 2\nn_test: 3\n",
}
# The learner's prefix, by hand: the instruction, then the first two train words of letters/question ("cat", "tree")
# in the default prompt format (question, " answer", delimiter "\n", separator "\n").
CONTROL_PREFIX = "Answer with a number.\n"
LEARNER_PREFIX = (CONTROL_PREFIX + "Q: How many letters are in 'cat'?\nA: 3\n\n"
                  "Q: How many letters are in 'tree'?\nA: 4\n\n")
# The test questions, by hand: items 2..4 of each list (after the two train items).
TESTS = {"letters/question": [("How many letters are in 'apple'?", "5"), ("How many letters are in 'sun'?", "3"),
                              ("How many letters are in 'river'?", "5")],
         "words/command": [("Count the words in 'birds sing at dawn'.", "4"), ("Count the words in 'it rains'.", "2"),
                           ("Count the words in 'we walk home now'.", "4")]}
ENTRIES = {  # the `ntkeval` command (preflight, then Hydra), and Hydra's entry alone (the runtime without preflight)
    "command": ["-m", "ntkeval"],
    "hydra": ["-c", "import sys; from ntkeval.app import _hydra_entry; _hydra_entry()"],
}


def user_config_dir(tmp_path: Path) -> Path:
    conf = tmp_path / "my-conf"
    for group, text in YAMLS.items():
        (conf / group).mkdir(parents=True)
        (conf / group / "toy.yaml").write_text(text)
    return conf


def files_under(*folders: str) -> set[Path]:
    return {p.relative_to(REPO) for folder in folders for p in (REPO / folder).rglob("*") if p.is_file()}


def run_toys(entry: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [f"hydra.searchpath=[file://{user_config_dir(tmp_path)}]", "learner=toy", "scorer=toy", "dataset=toy",
            "pair.train=letters/question", "pair.test=[letters/question,words/command]", "model=tiny",
            "logger=none", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", "device=cpu",
            *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *ENTRIES[entry], *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_a_toy_learner_scorer_and_data_set_run_a_cell_from_one_module_and_one_yaml_each(entry, tmp_path):
    before = files_under("src", "conf")
    done = run_toys(entry, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_under("src", "conf") == before  # nothing of ours was added to make room for the toys

    result = json.loads((tmp_path / "run" / "result.json").read_text())
    cell = result["cell"]
    assert (cell["learner"], cell["control"], cell["dataset"], cell["scorer"], cell["train_skill"]) == \
        ("prefix", "prefix-control", "toy-counting", "toy-greedy", "letters/question")
    rows = {row["test_skill"]: row for row in result["tests"]}
    assert list(rows) == ["letters/question", "words/command"]  # the data set's own order
    questions = [json.loads(line) for line in (tmp_path / "run" / "questions.jsonl").read_text().splitlines()]
    for skill, row in rows.items():
        assert row["n"] == 3
        assert row["prefix_chars_base"] == 0
        assert row["prefix_chars_control"] == len(CONTROL_PREFIX) == 22
        assert row["prefix_chars_learner"] == len(LEARNER_PREFIX) == 103
        mine = [q for q in questions if q["test_skill"] == skill]
        assert [(q["question"], q["answer"]) for q in mine] == TESTS[skill]
        assert [q["id"] for q in mine] == [f"{skill}/test/{i}" for i in range(3)]
        for role in ("base", "control", "learner"):  # accuracy = the mean of the per-question greedy flags
            flags = [q[f"greedy_{role}"] for q in mine]
            assert set(flags) <= {0, 1} and row[f"acc_{role}"] == sum(flags) / 3
        assert row["delta"] == row["acc_learner"] - row["acc_control"] == row["ci_low"] == row["ci_high"]
    assert result["cache"]["misses"] == {"toy-greedy": 6}  # base, control, learner x 2 test skills, each once


def test_a_bad_key_of_a_toy_is_one_line_before_any_model_loads(tmp_path):
    """The schema reads the toy learner's constructor: a misspelt knob is refused in one line, exit 2."""
    done = run_toys("command", tmp_path, "+learner.shot=5")
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip() == ("ntkeval: error: unknown key 'learner.shot'; valid keys of learner "
                                   "(toy_extensions.PrefixLearner): control_name, instruction, name, shots")
    assert not (tmp_path / "run").exists()


def test_the_toys_are_real_implementations_of_their_protocols():
    import toy_extensions as toys

    from ntkeval.data.base import DataSet
    from ntkeval.scorers.base import Scorer

    data = toys.ToyCounting()
    assert isinstance(data, DataSet) and isinstance(toys.GreedyScorer(), Scorer)
    assert data.resolve("letters") == ["letters/question", "letters/command"]
    assert data.resolve(["command", "words/question"]) == ["letters/command", "words/question", "words/command"]
    assert data.skill_groups().labels("surface", data.skills()) == ["question", "command"] * 2
    assert not {e.question for e in data.train("words/command")} & {e.question for e in data.test("words/command")}
    learner = toys.PrefixLearner()
    assert learner.control().control() is None  # the instruction alone is compared with the untouched model
    assert learner.key("letters/question", 0) != learner.control().key("letters/question", 0)
