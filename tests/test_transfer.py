"""Simple to complex (report/transfer.csv): block means checked by hand, both intervals' coverage by simulation, no
table where the grid has no composite skills or the data set is not arith, and the table through ntkeval-report."""

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from structure_fakes import by_name

from ntkeval.data import arith
from ntkeval.data.base import SkillGroups
from ntkeval.report.structure import groups_key
from ntkeval.report.sweep_report import main
from ntkeval.report.transfer import (
    COMPOSITE,
    ELEMENTARY,
    TRANSFER_COLUMNS,
    skill_interval,
    transfer_rows,
    write_transfer,
)

IDENTITY = {"model": "m", "learner": "icl-skill", "dataset": "arith", "test_dataset": "arith", "format": "direct",
            "scorer": "exact", "estimate": None, "config_id": "c", "seed": 0}
SMALL = ["add/question", "sub/question", "ops/question", "cplex/question"]


def kernel_rows(skills, value, **identity):
    return [{**IDENTITY, **identity, "train_skill": a, "test_skill": b, "delta": value(a, b)}
            for a, b in itertools.product(skills, skills)]


def groups_for(rows):
    skills = list(dict.fromkeys([r["train_skill"] for r in rows] + [r["test_skill"] for r in rows]))
    return {groups_key(rows[0]): by_name(skills, "arith")}


def by_block(found):
    return {(r.train_group, r.test_group): r for r in found}


def test_the_kinds_split_arith_operations():
    assert set(ELEMENTARY) | set(COMPOSITE) == set(arith.OPS) and not set(ELEMENTARY) & set(COMPOSITE)


def test_block_means_by_hand():
    k = {(a, b): 0.1 * i + 0.01 * j for (i, a), (j, b) in itertools.product(enumerate(SMALL), enumerate(SMALL))}
    rows = kernel_rows(SMALL, lambda a, b: k[(a, b)])
    blocks = by_block(transfer_rows(rows, None, groups_for(rows)))
    add, sub, ops, cplex = SMALL
    expected = {
        ("elementary", "composite"): [k[(add, ops)], k[(add, cplex)], k[(sub, ops)], k[(sub, cplex)]],
        ("composite", "elementary"): [k[(ops, add)], k[(ops, sub)], k[(cplex, add)], k[(cplex, sub)]],
        ("elementary", "elementary"): [k[(add, sub)], k[(sub, add)]],  # off the diagonal only
        ("composite", "composite"): [k[(ops, cplex)], k[(cplex, ops)]],
        ("elementary", "ops"): [k[(add, ops)], k[(sub, ops)]], ("elementary", "cplex"): [k[(add, cplex)],
                                                                                      k[(sub, cplex)]],
        ("add", "composite"): [k[(add, ops)], k[(add, cplex)]], ("sub", "composite"): [k[(sub, ops)], k[(sub, cplex)]],
        ("composite", "add"): [k[(ops, add)], k[(cplex, add)]], ("composite", "sub"): [k[(ops, sub)], k[(cplex, sub)]],
        ("ops", "elementary"): [k[(ops, add)], k[(ops, sub)]], ("cplex", "elementary"): [k[(cplex, add)],
                                                                                         k[(cplex, sub)]]}
    assert set(blocks) == set(expected)  # mul and div are not in the grid: no rows for them
    for key, values in expected.items():
        assert (blocks[key].delta, blocks[key].n_entries) == (pytest.approx(np.mean(values)), len(values)), key
    assert blocks[("elementary", "ops")].direction == "elementary->composite"
    assert blocks[("ops", "elementary")].direction == "composite->elementary"
    # two skills a side: no interval over skills; no per-question deltas: none over questions
    assert all(math.isnan(r.skill_ci_low) and math.isnan(r.q_ci_low) for r in blocks.values())


def test_per_question_deltas_give_the_block_mean_and_share_questions_across_train_rows():
    k = {(a, b): 0.1 * i - 0.02 * j for (i, a), (j, b) in itertools.product(enumerate(SMALL), enumerate(SMALL))}
    rows = kernel_rows(SMALL, lambda a, b: k[(a, b)])
    offsets = [0.05, -0.05, 0.1, -0.1]  # per test question, the same for every train skill: mean 0
    questions = [{**IDENTITY, "train_skill": a, "test_skill": b, "id": f"{b}/{q}", "delta": k[(a, b)] + o}
                 for a, b in itertools.product(SMALL, SMALL) for q, o in enumerate(offsets)]
    block = by_block(transfer_rows(rows, questions, groups_for(rows)))[("elementary", "composite")]
    assert block.q_delta == pytest.approx(block.delta) and block.n_questions == 4
    # each test skill's z (summed over train rows) carries its question offsets: variance 2 x (1/4)^2 x var(offsets)
    se = math.sqrt(2 * (0.5 ** 2) * np.var(offsets, ddof=1) / 4)
    assert block.q_ci_high - block.q_ci_low > 2 * 1.96 * se


def test_recorded_operations_win_over_names():
    skills = ["p/question", "q/question", "r/question"]
    rows = kernel_rows(skills, lambda a, b: 1.0 if (a, b) == ("p/question", "r/question") else 0.0)
    recorded = SkillGroups(("operation", "format"), "operation", "format", {
        "p/question": {"operation": "add", "format": "question"}, "q/question": {"operation": "sub", "format": "question"},
        "r/question": {"operation": "cplex", "format": "question"}})
    blocks = by_block(transfer_rows(rows, None, {groups_key(rows[0]): recorded}))
    assert blocks[("elementary", "composite")].delta == pytest.approx(0.5)
    assert blocks[("add", "composite")].delta == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["elementary only", "khanskill", "arith train, khanskill test"])
def test_no_table_without_composite_skills_or_arith(tmp_path: Path, case: str):
    skills = {"elementary only": ["add/question", "sub/question", "mul/question"]}.get(case, SMALL)
    identity = {"khanskill": {"dataset": "khanskill", "test_dataset": "khanskill"},
                "arith train, khanskill test": {"test_dataset": "khanskill"}}.get(case, {})
    rows = kernel_rows(skills, lambda a, b: 0.1, **identity)
    assert write_transfer(rows, None, {}, tmp_path) == []
    assert not (tmp_path / "transfer.csv").exists()


def simulate_questions(rng, mu, skills, n_q):
    """Per-question deltas: entry mean + a question effect shared by every train row + noise of the pair."""
    questions = []
    for b in skills:
        shared = rng.normal(0.0, 0.15, n_q)
        for a in skills:
            noise = rng.normal(0.0, 0.1, n_q)
            questions += [{**IDENTITY, "train_skill": a, "test_skill": b, "id": q, "delta": mu[(a, b)] + s + e}
                          for q, (s, e) in enumerate(zip(shared, noise))]
    return questions


def test_interval_over_questions_covers_the_block_mean():
    rng = np.random.default_rng(0)
    skills = ["add/question", "sub/question", "mul/question", "ops/question", "cplex/question"]
    mu = {(a, b): rng.uniform(-0.2, 0.3) for a, b in itertools.product(skills, skills)}
    rows = kernel_rows(skills, lambda a, b: mu[(a, b)])
    groups = groups_for(rows)
    truth = {key: r.delta for key, r in by_block(transfer_rows(rows, None, groups)).items()}
    hits, reps = {key: 0 for key in truth}, 400
    for _ in range(reps):
        questions = simulate_questions(rng, mu, skills, 10)
        for key, r in by_block(transfer_rows(rows, questions, groups)).items():
            hits[key] += r.q_ci_low <= truth[key] <= r.q_ci_high
    coverage = {key: h / reps for key, h in hits.items()}
    assert min(coverage.values()) >= 0.93, coverage


@pytest.mark.parametrize("shared", [False, True])
def test_interval_over_skills_covers_the_population_mean(shared: bool):
    """Crossed random effects: a cross block (8 train by 4 test skills, disjoint) and a reference block (6 skills
    as both train and test, off the diagonal, each skill's train and test effects correlated)."""
    rng = np.random.default_rng(1)
    hits, reps = 0, 1000
    for _ in range(reps):
        if shared:
            effects = rng.multivariate_normal([0, 0], [[0.01, 0.008], [0.008, 0.01]], 6)
            entries = [(str(i), str(j), 0.1 + effects[i, 0] + effects[j, 1] + rng.normal(0, 0.05))
                       for i in range(6) for j in range(6) if i != j]
        else:
            rows, cols = rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 4)
            entries = [(f"t{i}", f"s{j}", 0.1 + rows[i] + cols[j] + rng.normal(0, 0.05))
                       for i in range(8) for j in range(4)]
        low, high = skill_interval(entries)
        hits += low <= 0.1 <= high
    assert hits / reps >= 0.93


def write_cell(sweep: Path, num: int, train: str, tests: list[str], delta, seed: int = 0) -> None:
    """A done arith cell with recorded skill groups; every train row sees the same questions per test skill."""
    cell = {**IDENTITY, "cell_id": f"id{num}", "control": "icl-standard", "train_skill": train, "seed": seed}
    per_q = {t: [delta(train, t) + o for o in (-0.1, 0.0, 0.1, 0.05, -0.05)] for t in tests}
    rows = [{"test_skill": t, "n": 5, "p_learner": 0.5 + float(np.mean(d)), "p_control": 0.5, "p_base": 0.4,
             "delta": float(np.mean(d)), "ci_low": -1.0, "ci_high": 1.0} for t, d in per_q.items()]
    job = sweep / str(num)
    job.mkdir(parents=True)
    groups = by_name([train, *tests], "arith").to_json()
    (job / "result.json").write_text(json.dumps({"status": "done", "cell": cell, "tests": rows,
                                                 "skill_groups": groups}))
    (job / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"{t}/test/{i}", "test_skill": t, "p_learner": 0.5 + x, "p_control": 0.5, "delta": x})
        + "\n" for t, d in per_q.items() for i, x in enumerate(d)))


def elementary(skill: str) -> bool:
    return skill.split("/")[0] in ELEMENTARY


def delta(train: str, test: str) -> float:
    """0.2 among elementary skills, 0.05 from elementary to composite, nothing from composite skills."""
    return 0.2 if elementary(train) and elementary(test) else (0.05 if elementary(train) else 0.0)


def test_report_writes_transfer_csv_and_a_summary_line(tmp_path: Path):
    skills = [f"{op}/{f}" for op in ("add", "sub", "mul", "ops", "cplex") for f in ("question", "word")]
    sweep = tmp_path / "sweep"
    for num, train in enumerate(skills):
        write_cell(sweep, num, train, skills, delta)
    assert main([str(sweep)]) == 0
    with open(sweep / "report" / "transfer.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == TRANSFER_COLUMNS
        rows = {(r["train_group"], r["test_group"]): r for r in reader}
    e_to_c = rows[("elementary", "composite")]
    assert (e_to_c["direction"], e_to_c["n_entries"], e_to_c["n_questions"]) == ("elementary->composite", "24", "5")
    assert float(e_to_c["delta"]) == pytest.approx(0.05) and float(e_to_c["q_delta"]) == pytest.approx(0.05)
    assert float(e_to_c["q_ci_low"]) < 0.05 < float(e_to_c["q_ci_high"])
    # 6 train and 4 test skills, every entry 0.05: an interval over skills, of no width
    assert (float(e_to_c["skill_ci_low"]), float(e_to_c["skill_ci_high"])) == pytest.approx((0.05, 0.05))
    assert float(rows[("elementary", "elementary")]["delta"]) == pytest.approx(0.2)
    assert float(rows[("composite", "elementary")]["delta"]) == pytest.approx(0.0)
    assert {("elementary", "ops"), ("mul", "composite"), ("composite", "add"), ("cplex", "elementary")} <= set(rows)
    summary = (sweep / "report" / "summary.md").read_text()
    assert "## Simple to complex (arith)" in summary
    line = next(x for x in summary.splitlines() if "training on elementary operations moves composite" in x)
    assert line.startswith("- m icl-skill exact config c seed 0: training on elementary operations moves composite "
                           "ones by +0.050 [")
    assert "vs +0.200 [" in line and "training on composite operations moves elementary ones by +0.000" in line

    only_elementary = tmp_path / "elementary"
    for num, train in enumerate(skills[:4]):
        write_cell(only_elementary, num, train, skills[:4], delta)
    assert main([str(only_elementary)]) == 0
    assert not (only_elementary / "report" / "transfer.csv").exists()
    assert "Simple to complex" not in (only_elementary / "report" / "summary.md").read_text()
