"""How much of a seed-pooled entry's spread is seed variation: the method-of-moments decomposition checked by hand,
by simulation (unbiased, unbalanced question counts included; no seed effect reads as none) and through the report."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ntkeval.report.pooling import seed_variance
from ntkeval.report.sweep_report import main


def test_balanced_seeds_by_hand():
    # seed means 0.2, 0.3, 0.1: between = 0.01; each seed's variance 0.01 over 3 questions: within = 0.01 / 3
    v = seed_variance([[0.1, 0.3, 0.2], [0.2, 0.4, 0.3], [0.0, 0.2, 0.1]])
    assert (v.n_seeds, v.between, v.within) == (3, pytest.approx(0.01), pytest.approx(0.01 / 3))
    assert v.seed_var == pytest.approx(0.01 - 0.01 / 3)
    assert v.seed_share == pytest.approx((0.01 - 0.01 / 3) / 0.01)
    assert v.columns() == {"seed_sd": pytest.approx(math.sqrt(0.02 / 3)), "question_se": pytest.approx(
        math.sqrt(0.01 / 3)), "seed_share": pytest.approx(2 / 3)}


def test_unbalanced_seeds_by_hand():
    # seed 1: mean 0.1, variance 0.02 over 2 questions; seed 2: mean 0.4, variance 0.02 / 3 over 4 questions
    v = seed_variance([[0.0, 0.2], [0.3, 0.5, 0.4, 0.4]])
    within = (0.02 / 2 + (0.02 / 3) / 4) / 2
    assert v.between == pytest.approx(0.045) and v.within == pytest.approx(within)
    assert v.seed_var_raw == pytest.approx(0.045 - within)
    assert v.seed_share == pytest.approx((0.045 - within) / 0.045)


def test_no_seed_spread_below_question_noise_is_truncated_at_zero_and_degenerate_input_is_nan():
    v = seed_variance([[0.0, 1.0], [1.0, 0.0]])  # equal seed means, question noise only
    assert v.seed_var_raw == pytest.approx(-0.25) and v.seed_var == 0 and v.seed_share == 0
    assert math.isnan(seed_variance([[0.1, 0.2]]).seed_share)         # one seed
    assert math.isnan(seed_variance([[0.1], [0.2, 0.3]]).seed_share)  # one question: no within variance
    assert math.isnan(seed_variance([[0.0, 0.0], [0.0, 0.0]]).seed_share)  # no spread at all


def simulate(sigma_seed: float, sigmas: list[float], sizes: list[int], reps: int, rng) -> list:
    """`reps` entries, each of len(sizes) seeds: seed s has sizes[s] questions with question noise sigmas[s]."""
    out = []
    for _ in range(reps):
        effects = rng.normal(0.0, sigma_seed, len(sizes))
        out.append(seed_variance([0.1 + a + rng.normal(0.0, s, n) for a, s, n in zip(effects, sigmas, sizes)]))
    return out


def test_seed_variance_estimator_is_unbiased_with_unbalanced_questions():
    rng = np.random.default_rng(0)
    sizes, sigmas, sigma_seed = [4, 8, 16, 40], [0.3, 0.2, 0.25, 0.1], 0.06
    fits = simulate(sigma_seed, sigmas, sizes, 4000, rng)
    raw = np.array([f.seed_var_raw for f in fits])
    assert abs(raw.mean() - sigma_seed ** 2) < 3 * raw.std(ddof=1) / math.sqrt(raw.size)
    within = np.mean([s ** 2 / n for s, n in zip(sigmas, sizes)])
    assert np.mean([f.within for f in fits]) == pytest.approx(within, rel=0.03)
    # a pooled-variance / mean-n estimator (balanced ANOVA's form) misses by much more than the noise here
    naive = np.array([f.between for f in fits]) - np.mean(np.square(sigmas)) / np.mean(sizes)
    assert abs(naive.mean() - sigma_seed ** 2) > 10 * raw.std(ddof=1) / math.sqrt(raw.size)


def test_no_seed_effect_gives_a_seed_share_near_zero():
    rng = np.random.default_rng(1)
    fits = simulate(0.0, [0.2] * 5, [20] * 5, 3000, rng)
    raw = np.array([f.seed_var_raw for f in fits])
    assert abs(raw.mean()) < 3 * raw.std(ddof=1) / math.sqrt(raw.size)
    shares = np.array([f.seed_share for f in fits])
    assert np.median(shares) == 0.0 and shares.mean() < 0.2
    strong = simulate(0.2, [0.2] * 5, [20] * 5, 300, rng)  # seed sd 0.2 against a seed mean's 0.045: share ~0.95
    assert np.median([f.seed_share for f in strong]) > 0.8


def write_cell(sweep: Path, num: int, seed: int, train: str, deltas: dict[str, list[float]]) -> None:
    """A done cell of seed `seed`: per test skill its per-question deltas (questions.jsonl) and their mean."""
    cell = {"cell_id": f"id{num}", "model": "tiny", "learner": "icl-skill", "control": "icl-standard",
            "dataset": "arith", "format": "direct", "train_skill": train, "seed": seed, "scorer": "exact",
            "estimate": None, "config_id": "cfgA"}
    rows = [{"test_skill": t, "n": len(d), "p_learner": 0.5 + float(np.mean(d)), "p_control": 0.5, "p_base": 0.4,
             "delta": float(np.mean(d)), "ci_low": -1.0, "ci_high": 1.0} for t, d in deltas.items()]
    job = sweep / str(num)
    job.mkdir(parents=True)
    (job / "result.json").write_text(json.dumps({"status": "done", "cell": cell, "tests": rows}))
    (job / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"{t}/test/{seed}-{i}", "test_skill": t, "p_learner": 0.5 + x, "p_control": 0.5,
                    "delta": x}) + "\n" for t, d in deltas.items() for i, x in enumerate(d)))


def test_report_writes_seed_columns_and_a_summary_line(tmp_path: Path):
    rng = np.random.default_rng(2)
    sweep, skills = tmp_path / "sweep", ["add/question", "sub/question"]
    data = {}
    for seed in range(3):
        for train in skills:
            # add -> sub moves a lot from seed to seed; every other entry only by its questions
            shift = {("add/question", "sub/question"): [0.0, 0.4, -0.4][seed]}
            data[(seed, train)] = {t: list(np.round(rng.normal(0.1 + shift.get((train, t), 0.0), 0.05, 8), 4))
                                   for t in skills}
    for num, ((seed, train), deltas) in enumerate(data.items()):
        write_cell(sweep, num, seed, train, deltas)
    assert main([str(sweep)]) == 0
    with open(sweep / "report" / "kernel_pooled.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert {"seed_sd", "question_se", "seed_share"} <= set(reader.fieldnames)
        rows = {(r["train_skill"], r["test_skill"]): r for r in reader}
    for (train, test), row in rows.items():
        expected = seed_variance([data[(s, train)][test] for s in range(3)]).columns()
        assert {k: float(row[k]) for k in expected} == pytest.approx(expected)
    assert float(rows[("add/question", "sub/question")]["seed_share"]) > 0.9
    summary = (sweep / "report" / "summary.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith("- tiny icl-skill arith"))
    assert "over 4 entries" in line and "dominates (share > 0.5) in 1: add/question->sub/question (" in line
