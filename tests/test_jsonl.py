"""Tests of user data sets: a JSONL file round-trips into seeded per-skill splits, every bad input is one clear
line, answer types drive equivalence and wrong answers, and the Hugging Face path works through its loader."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest

import ntkeval.data.jsonl as jsonl
from ntkeval.build import make, resolve_skills
from ntkeval.data.base import Example
from ntkeval.data.jsonl import JsonlDataset
from ntkeval.errors import UserError


def rows() -> list[dict]:
    """Three skills of 10 questions: integers in two formats, fractions with a declared type, yes/no text."""
    out = []
    for i in range(10):
        out.append({"question": f"What is {i} + {i + 3}?", "answer": str(2 * i + 3), "skill": "add/small",
                    "format": "symbol" if i % 2 else "question"})
        out.append({"question": f"Simplify {2 * (i + 1)}/{4 * (i + 1)}.", "answer": "1/2",
                    "skill": "fractions/simplify", "answer_type": "fraction", "format": "question"})
        out.append({"question": f"Is {i + 10} even?", "answer": "yes" if i % 2 == 0 else "no", "skill": "parity"})
    return out


def write(tmp_path, lines: list, name: str = "data.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


@pytest.fixture
def good(tmp_path) -> str:
    return write(tmp_path, rows()[:15] + ["", "   "] + rows()[15:])  # blank lines are allowed anywhere


def test_a_good_file_round_trips_into_seeded_disjoint_splits(good):
    ds = JsonlDataset(path=good, seed=3, n_train=4, n_test=5)
    assert ds.skills() == ["add/small", "fractions/simplify", "parity"]
    source = {(r["skill"], r["question"]): r["answer"] for r in rows()}
    for skill in ds.skills():
        train, test = ds.train(skill), ds.test(skill)
        assert len(train) == 4 and len(test) == 5
        assert [e.id for e in test] == [f"{skill}/test/{i}" for i in range(5)]
        assert not {e.question for e in train} & {e.question for e in test}
        for example in train + test:
            assert example.skill == skill and source[skill, example.question] == example.answer
    again, other = JsonlDataset(path=good, seed=3, n_train=4, n_test=5), JsonlDataset(path=good, seed=4, n_train=4,
                                                                                      n_test=5)
    assert all(again.test(s) == ds.test(s) and again.train(s) == ds.train(s) for s in ds.skills())
    assert any(other.test(s) != ds.test(s) for s in ds.skills())
    assert ds.identity() == {"name": "jsonl", "data_sha256": ds.identity()["data_sha256"], "seed": 3, "n_train": 4,
                             "n_test": 5, "version": 2}


def test_split_is_the_same_in_another_process(good):
    code = (f"from ntkeval.data.jsonl import JsonlDataset as J; d = J(path={good!r}, seed=1, n_train=3, n_test=3); "
            "print([e.question for s in d.skills() for e in d.test(s) + d.train(s)])")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": h}).stdout for h in ("1", "2")}
    ds = JsonlDataset(path=good, seed=1, n_train=3, n_test=3)
    assert outputs == {repr([e.question for s in ds.skills() for e in ds.test(s) + ds.train(s)]) + "\n"}


def test_identity_follows_the_content_not_the_path(tmp_path, good):
    copy = write(tmp_path, rows(), "elsewhere.jsonl")
    identity = JsonlDataset(path=good, n_train=2, n_test=2).identity()
    assert JsonlDataset(path=copy, n_train=2, n_test=2).identity() == identity
    changed = rows()
    changed[0]["answer"] = "4"
    assert JsonlDataset(path=write(tmp_path, changed, "changed.jsonl"), n_train=2, n_test=2).identity() != identity


def test_resolve_all_skills_formats_groups_and_unknown(good):
    ds = JsonlDataset(path=good, n_train=2, n_test=2)
    assert ds.formats() == ["question", "symbol"]
    assert ds.resolve("all") == ds.skills()
    assert ds.resolve("parity") == ["parity"]
    assert ds.resolve("symbol") == ["add/small"]
    assert ds.resolve("question") == ["add/small", "fractions/simplify"]
    assert ds.resolve("fractions") == ["fractions/simplify"]
    assert ds.resolve(["parity", "add/small", "parity"]) == ["add/small", "parity"]
    with pytest.raises(UserError, match=r"unknown skill 'subtract'; valid choices: all, question, symbol, add, "
                                        r"fractions, add/small, fractions/simplify, parity"):
        ds.resolve(["parity", "subtract"])
    with pytest.raises(UserError, match="unknown skill 'subtract'"):
        ds.test("subtract")


@pytest.mark.parametrize("lines, message", [
    (['{"question": "q", "answer": "1", "skill": "s"}', '{"question": "q2", "answer": 2, "skill": "s"'],
     r"data.jsonl line 2: malformed JSON \(Expecting ',' delimiter at column 45\)"),  # just past the line's end
    (['{"question": "q", "skill": "s"}'], r"data.jsonl line 1: missing field 'answer'$"),
    (['{"question": "q", "answer": "1", "skill": "s"}', "", '{"question": "  ", "answer": "1", "skill": "s"}'],
     r"data.jsonl line 3: missing field 'question'$"),
    (['{"question": "q", "answer": "1", "skill": "s", "answer_type": "number"}'],
     r"line 1: unknown answer_type 'number'; valid choices: auto, integer, decimal, fraction, lowest-terms"),
    (['{"question": "q", "answer": "1/2", "skill": "s", "answer_type": "integer"}'],
     r"line 1: answer '1/2' is not a valid integer answer \(a whole number"),
    (['["q", "1", "s"]'], r"line 1: expected a JSON object, got list"),
    (['{"question": "q", "answer": [1], "skill": "s"}'], r"line 1: field 'answer' must be a string or a number"),
    (['{"question": "q", "answer": "1", "skill": "s"}', '{"question": "q", "answer": "2", "skill": "s"}'],
     r"line 2: question repeats line 1 of skill 's' with another answer \('2' vs '1'\)"),
    (['{"question": "q", "answer": "1", "skill": "word"}', '{"question": "r", "answer": "1", "skill": "x", '
      '"format": "word"}'], r"skill name 'word' is also a format; rename one"),
    ([], r"has no questions"),
])
def test_bad_files_fail_with_one_line_naming_the_problem(tmp_path, lines, message):
    with pytest.raises(UserError, match=message) as error:
        JsonlDataset(path=write(tmp_path, lines), n_train=0, n_test=1)
    assert "\n" not in str(error.value) and str(error.value).startswith("jsonl: ")


def test_too_few_questions_names_the_skill_what_it_has_and_what_is_needed(good):
    with pytest.raises(UserError, match=r"skill 'add/small' has 10 distinct questions but n_train \+ n_test = 12 "
                                        r"are needed"):
        JsonlDataset(path=good, n_train=7, n_test=5)
    assert len(JsonlDataset(path=good, n_train=5, n_test=5).train("parity")) == 5  # exactly enough is fine


def test_missing_file_and_source_settings(tmp_path):
    with pytest.raises(UserError, match=r"file '.*nope.jsonl' not found \(dataset.path\)"):
        JsonlDataset(path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="set exactly one of dataset.path"):
        JsonlDataset()
    with pytest.raises(UserError, match="set exactly one of dataset.path"):
        JsonlDataset(path="x.jsonl", hf_name="owner/name")
    with pytest.raises(UserError, match=r"unknown field in dataset.fields 'topic'; valid choices: question"):
        JsonlDataset(path="x.jsonl", fields={"topic": "skill"})
    for kwargs in ({"n_train": -1}, {"n_test": "3"}, {"seed": 1.5}):
        with pytest.raises(UserError):
            JsonlDataset(path="x.jsonl", **kwargs)


def test_repeated_questions_count_once(tmp_path):
    lines = rows() + [{"question": "What is 0  + 3?", "answer": "3.0", "skill": "add/small"}]
    ds = JsonlDataset(path=write(tmp_path, lines), n_train=5, n_test=5)
    with pytest.raises(UserError, match="has 10 distinct questions"):
        JsonlDataset(path=write(tmp_path, lines), n_train=6, n_test=5)
    assert len(ds.train("add/small") + ds.test("add/small")) == 10


def test_answer_types_drive_correctness_and_random_answers(good):
    ds, rng = JsonlDataset(path=good, n_train=5, n_test=5), random.Random(0)
    fraction = ds.test("fractions/simplify")[0]
    assert ds.answer_kind(fraction) == "fraction" and ds.is_correct(fraction, "0.5") and ds.is_correct(fraction, "2/4")
    number = ds.test("add/small")[0]
    assert ds.answer_kind(number) == "integer" and ds.is_correct(number, f"{number.answer}.0")
    for example in ds.train("add/small") + ds.train("fractions/simplify"):
        for _ in range(10):
            wrong = ds.random_answer(example, rng)
            assert not ds.is_correct(example, wrong)
            assert re.sub(r"\d", "#", wrong) == re.sub(r"\d", "#", example.answer)
    parity = ds.test("parity")[0]
    assert ds.answer_kind(parity) == "text"
    assert ds.random_answer(parity, rng) == {"yes": "no", "no": "yes"}[parity.answer]


def test_a_text_skill_with_one_answer_has_no_random_answer(tmp_path):
    lines = [{"question": f"Is {2 * i} even?", "answer": "yes", "skill": "even"} for i in range(4)]
    ds = JsonlDataset(path=write(tmp_path, lines), n_train=2, n_test=2)
    with pytest.raises(UserError, match="no other choice than 'yes'"):
        ds.random_answer(ds.train("even")[0], random.Random(0))


def test_hugging_face_rows_through_the_loader(monkeypatch):
    calls = []
    hub_rows = [{"problem": f"What is {i} * 2?", "solution": i * 2, "topic": "double" if i < 6 else "other",
                 "kind": "integer"} for i in range(12)]

    def fake_loader(name, config, split):
        calls.append((name, config, split))
        return hub_rows

    monkeypatch.setattr(jsonl, "load_hf_rows", fake_loader)
    ds = JsonlDataset(hf_name="someone/doubles", hf_config="main", hf_split="validation", n_train=2, n_test=3,
                      fields={"question": "problem", "answer": "solution", "skill": "topic", "answer_type": "kind"})
    assert calls == [("someone/doubles", "main", "validation")]
    assert ds.skills() == ["double", "other"] and ds.source == "hf:someone/doubles/main:validation"
    assert all(e.answer == str(int(e.question.split()[2]) * 2) for e in ds.test("double") + ds.train("double"))
    with pytest.raises(UserError, match=r"row 1: missing field 'skill' \(column 'subject'\)"):
        JsonlDataset(hf_name="someone/doubles", fields={"question": "problem", "answer": "solution",
                                                         "skill": "subject"})


def test_hugging_face_without_the_datasets_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail as if not installed
    with pytest.raises(UserError, match="pip install datasets"):
        JsonlDataset(hf_name="someone/doubles")


def test_the_real_config_builds_a_cell_dataset(compose_config, good):
    cfg = compose_config("dataset=jsonl", f"dataset.path={good}", "dataset.n_train=3", "dataset.n_test=3",
                         "pair.train=parity", "pair.test=question")
    dataset = make(cfg.dataset)
    assert resolve_skills(dataset, cfg.pair) == ("parity", ["add/small", "fractions/simplify"])
    hub = compose_config("dataset=jsonl", "dataset.path=null", "dataset.hf_name=a/b", "dataset.fields.skill=topic")
    assert hub.dataset.fields.skill == "topic" and hub.dataset.fields.answer == "answer"
    assert isinstance(dataset.test("parity")[0], Example)
