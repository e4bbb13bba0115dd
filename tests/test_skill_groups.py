"""Data sets describe their skill groups (deep axis, surface axis if any), cells record them, and the report's
deep-versus-surface statistics read the recorded groups, never the data set's name; each checked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ntkeval.data.arith import ArithDataset
from ntkeval.data.base import SkillGroups, checked_groups
from ntkeval.data.jsonl import JsonlDataset
from ntkeval.data.khanskill import KhanSkillDataset
from ntkeval.errors import UserError
from ntkeval.report.recorded_groups import kernel_groups
from ntkeval.report.structure import structure_stats


def test_arith_groups_are_operation_deep_and_format_surface():
    groups = ArithDataset(seed=0, n_train=1, n_test=1).skill_groups()
    assert (groups.axes, groups.deep, groups.surface) == (("operation", "format"), "operation", "format")
    assert len(groups.of_skill) == 24
    assert groups.of_skill["add/word"] == {"operation": "add", "format": "word"}
    assert groups.of_skill["cplex/symbol"] == {"operation": "cplex", "format": "symbol"}


def test_khanskill_groups_are_domain_deep_and_level_with_no_surface():
    ds = KhanSkillDataset(seed=0, n_train=1, n_test=1)
    groups = ds.skill_groups()
    assert (groups.axes, groups.deep, groups.surface) == (("domain", "level"), "domain", None)
    info = ds.skill_info("fractions/add-unlike-denominators")
    assert groups.of_skill[info.id] == {"domain": "fractions", "level": str(info.level)}
    assert list(groups.of_skill) == ds.skills()


def jsonl_rows():
    """Two skills per topic, one topic per skill; every skill in one format; 2 questions each."""
    skills = {"s1": ("algebra", "word"), "s2": ("algebra", "symbol"), "s3": ("geometry", "word"),
              "s4": ("geometry", "symbol")}
    return [{"question": f"{skill} question {i}?", "answer": str(i), "skill": skill, "topic": topic,
             "format": fmt} for skill, (topic, fmt) in skills.items() for i in range(2)]


def write(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_groups_are_the_fields_the_user_names(tmp_path):
    ds = JsonlDataset(path=write(tmp_path, jsonl_rows()), n_train=1, n_test=1, groups=["topic", "format"])
    groups = ds.skill_groups()
    assert (groups.axes, groups.deep, groups.surface) == (("topic", "format"), "topic", "format")
    assert groups.of_skill == {"s1": {"topic": "algebra", "format": "word"},
                               "s2": {"topic": "algebra", "format": "symbol"},
                               "s3": {"topic": "geometry", "format": "word"},
                               "s4": {"topic": "geometry", "format": "symbol"}}
    assert ds.resolve("geometry") == ["s3", "s4"] and ds.resolve("word") == ["s1", "s3"]  # values select skills
    plain = JsonlDataset(path=write(tmp_path, jsonl_rows()), n_train=1, n_test=1).skill_groups()
    assert (plain.axes, plain.surface, plain.of_skill["s1"]) == (("domain",), None, {"domain": "s1"})


def test_jsonl_bad_group_fields_are_one_line(tmp_path):
    path = write(tmp_path, jsonl_rows())
    with pytest.raises(UserError) as error:
        JsonlDataset(path=path, n_train=1, n_test=1, groups=["topik"])
    assert str(error.value).count("\n") == 0 and "topik" in str(error.value)
    assert "answer, format, question, skill, topic" in str(error.value)
    rows = jsonl_rows()
    rows[1]["topic"] = "geometry"  # s1 now has two topics
    with pytest.raises(UserError, match="skill 's1' has several values \\(algebra, geometry\\) of group field 'topic'"):
        JsonlDataset(path=write(tmp_path, rows), n_train=1, n_test=1, groups=["topic"])
    with pytest.raises(UserError, match="expected one or two distinct fields"):
        JsonlDataset(path=path, n_train=1, n_test=1, groups=["topic", "format", "skill"])


def test_a_data_set_without_groups_is_refused_in_one_line():
    class Old:
        name = "old"
    with pytest.raises(UserError, match="data set 'old' does not describe its skill groups"):
        checked_groups(Old(), ["a"])
    assert checked_groups(ArithDataset(seed=0, n_train=1, n_test=1), ["add/word"]).deep == "operation"


def toy_groups(skills):
    """A data set that is not arith but has a surface axis: unit counted (deep) x how it is asked (surface)."""
    return SkillGroups(("unit", "style"), "unit", "style",
                       {s: {"unit": s.split("/")[0], "style": s.split("/")[1]} for s in skills})


def toy_results(value, record=True):
    """A 4 x 2 toy kernel's done results, each with the groups of its skills as the cell records them."""
    skills = [f"{u}/{s}" for u in ("letters", "words", "lines", "pages") for s in ("ask", "tell")]
    rng = np.random.default_rng(0)
    out = []
    for train in skills:
        cell = {"model": "m", "learner": "l", "dataset": "toy-counting", "train_skill": train, "seed": 0}
        tests = [{"test_skill": t, "delta": value(train, t) + rng.normal(0, 0.01)} for t in skills]
        result = {"status": "done", "cell": cell, "tests": tests, "config": {"dataset": {"_target_": "gone.Toy"}}}
        if record:
            result["skill_groups"] = toy_groups([train] + skills).to_json()
        out.append(result)
    return out


def kernel_rows(results):
    return [{**r["cell"], **t} for r in results for t in r["tests"]]


def test_the_report_reads_recorded_groups_of_a_non_arith_data_set_with_a_surface():
    results = toy_results(lambda a, b: 0.3 * (a.split("/")[1] == b.split("/")[1]))  # transfer follows the style
    warnings = []
    groups = kernel_groups(results, warn=warnings.append)
    (c,) = structure_stats(kernel_rows(results), groups, permutations=200)
    assert warnings == []
    assert c.contrast.startswith("same unit, other style (A) vs same style, other unit (B)")
    assert "learning follows the surface style" in c.verdict
    assert c.diff == pytest.approx(-0.3, abs=0.02) and (c.n_pairs_a, c.n_pairs_b) == (8, 8 * 3)


def test_old_results_without_groups_fall_back_to_the_data_set_or_warn():
    results = toy_results(lambda a, b: 0.0, record=False)
    warnings = []
    rebuilt = kernel_groups(results, warn=warnings.append, rebuild=lambda config: toy_groups(
        [t["test_skill"] for t in results[0]["tests"]]))
    assert warnings == [] and rebuilt[("m", "l", "toy-counting", None, None, None, None, None)].surface == "style"
    groups = kernel_groups(results, warn=warnings.append)  # gone.Toy cannot be imported any more
    assert groups == {} and len(warnings) == 1 and "treated as ungrouped" in warnings[0]
    (c,) = structure_stats(kernel_rows(results), groups, permutations=10)
    assert math.isnan(c.diff) and "no skill groups recorded" in c.verdict


def test_groups_round_trip_through_json():
    groups = ArithDataset(seed=0, n_train=1, n_test=1).skill_groups().only(["add/word", "mul/symbol"])
    assert SkillGroups.from_json(json.loads(json.dumps(groups.to_json()))) == groups
