"""Sample efficiency on the exact scorer's event (the completion is exactly the canonical answer + delimiter):
the closed forms equal ntkeval.stats.estimators, the simulated estimators are unbiased for the exact delta, their power
matches the normal approximation where it holds, and launch/sample_efficiency.py end to end on the tiny model."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntkeval.stats import estimators
from ntkeval.stats.efficiency import (
    ESTIMATORS,
    CanonicalQuestion,
    estimates,
    exact_delta,
    exact_sd,
    normal_power,
    normal_samples_needed,
    samples_needed,
    simulate,
    sizes,
    wilson,
)

REPO = Path(__file__).resolve().parents[1]


def question(p_control: float, p_learner: float) -> CanonicalQuestion:
    return CanonicalQuestion(math.log(p_control), math.log(p_learner))


def test_sizes_grow_by_about_root_two_up_to_the_largest():
    assert sizes(64) == [2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64]
    assert sizes(10) == [2, 3, 4, 6, 8, 10] and sizes(2) == [2]
    with pytest.raises(ValueError, match="n_max=1"):
        sizes(1)


def test_the_closed_forms_are_the_estimators_on_canonical_samples():
    """k canonical completions of n carry weight w; the others are not correct, so their log p does not matter."""
    rng = np.random.default_rng(0)
    questions = [question(0.3, 0.6), question(0.02, 0.5), question(0.7, 0.1)]
    n = 9
    k_c = rng.integers(0, n + 1, size=(5, len(questions)))
    k_l = rng.integers(0, n + 1, size=(5, len(questions)))
    got = estimates(questions, k_c, k_l, n)
    for r in range(5):
        per = {name: [] for name in ESTIMATORS}
        for j, q in enumerate(questions):
            def sample_set(k):
                correct = np.r_[np.ones(k), np.zeros(n - k)]
                junk = rng.normal(-20, 5, n)  # log p of completions that are not canonical: never used
                return (correct, np.where(correct == 1, q.logp_learner, junk),
                        np.where(correct == 1, q.logp_control, junk + 1))
            from_c, from_l = sample_set(k_c[r, j]), sample_set(k_l[r, j])
            per["accuracy-difference"].append(estimators.accuracy_difference(from_l[0], from_c[0]))
            per["importance"].append(estimators.importance_sampled(*from_c))
            per["mirror"].append(estimators.mirror(*from_l))
            per["balanced"].append(estimators.balanced(from_c, from_l))
        for name in ESTIMATORS:
            want = estimators.mean_over_questions(per[name])
            assert got[name][0][r] == pytest.approx(want.value, abs=1e-12), name
            assert got[name][1][r] == pytest.approx(want.variance, abs=1e-12), name


def test_an_infinite_weight_that_is_never_drawn_adds_nothing():
    q = CanonicalQuestion(-800.0, math.log(0.5))  # p_control underflows: w = inf
    value, var = estimates([q], np.array([[0]]), np.array([[3]]), 4)["importance"]
    assert value[0] == 0.0 and var[0] == 0.0


QUESTIONS = [question(0.3, 0.5), question(0.1, 0.15), question(0.6, 0.55), question(0.05, 0.4)]


@pytest.fixture(scope="module")
def rows():
    return simulate(QUESTIONS, [2, 4, 16, 64, 256], replications=2000, seed=1)


def test_every_simulated_estimator_averages_to_the_exact_delta(rows):
    delta = exact_delta(QUESTIONS)
    assert delta == pytest.approx(np.mean([0.2, 0.05, -0.05, 0.35]))
    for r in rows:
        mc = r["sd_exact"] / math.sqrt(r["replications"])
        assert abs(r["mean"] - delta) < 4 * mc, r


def test_the_error_is_the_exact_standard_deviation_and_shrinks_as_one_over_root_n(rows):
    """Independent draws at every size: no plateau at the gap between one realization and the truth."""
    for r in rows:
        assert r["rmse"] == pytest.approx(r["sd_exact"], rel=0.1), r
        assert r["sd"] == pytest.approx(r["sd_exact"], rel=0.1), r
    for name in ESTIMATORS:
        own = {r["n"]: r for r in rows if r["estimator"] == name}
        assert own[16]["rmse"] / own[256]["rmse"] == pytest.approx(4.0, rel=0.12), name


def test_the_reported_standard_error_matches_the_spread_once_counts_are_large(rows):
    for r in rows:
        if r["n"] == 256:
            assert r["se"] == pytest.approx(r["sd_exact"], rel=0.05), r
            assert r["coverage"] == pytest.approx(0.95, abs=0.02), r  # 2000 replications: MC sd 0.005


def test_coverage_exposes_an_estimator_whose_rare_huge_weights_a_typical_draw_never_sees():
    """The mirror estimate on a question the learner almost never answers canonically (p 1e-4) but the control
    often does (0.3): each learner draw of it weighs -2999, so almost every replication misses it, reports a small
    standard error and 'detects' a delta shifted upward; its power looks fine, its true error is more than ten times the
error it reports, and its 95% interval covers the exact delta far less often than claimed."""
    questions = [question(0.3, 1e-4)] + [question(0.2, 0.6)] * 9
    rows = {r["estimator"]: r for r in simulate(questions, [16], replications=2000, seed=4)}
    assert rows["mirror"]["power"] > 0.8 and rows["mirror"]["coverage"] < 0.85
    assert rows["mirror"]["sd_exact"] > 10 * rows["mirror"]["se"]
    assert rows["balanced"]["coverage"] == pytest.approx(0.95, abs=0.03)


def test_power_rises_with_samples_and_matches_the_normal_approximation_for_the_accuracy_difference():
    questions = [question(0.4, 0.5)] * 10  # delta 0.1; sd_exact(n) = sqrt(0.49 / n) / sqrt(10)
    ns = [2, 4, 8, 16, 32, 64, 128]
    got = [r for r in simulate(questions, ns, replications=1000, seed=2) if r["estimator"] == "accuracy-difference"]
    powers = [r["power"] for r in got]
    assert all(b >= a - 0.03 for a, b in zip(powers, powers[1:])), powers
    assert powers[0] < 0.2 and powers[-1] > 0.95
    for r in got:
        assert r["sd_exact"] == pytest.approx(math.sqrt(0.49 / r["n"] / 10))
        assert r["power_normal"] == pytest.approx(normal_power(0.1, r["sd_exact"], 1.959964), abs=1e-6)
        if r["n"] >= 16:  # large enough counts for the normal approximation and the estimated se
            assert abs(r["power"] - r["power_normal"]) < 0.05, r
        assert r["power_low"] <= r["power"] <= r["power_high"]


def test_wilson_interval_against_known_values():
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson(0, 200) == pytest.approx((0.0, 0.01884), abs=1e-4)
    assert wilson(200, 200)[1] == 1.0


def test_samples_needed_reads_the_power_and_its_interval():
    rows = [{"estimator": name, "n": n, "power": p, "power_low": p - 0.05, "power_high": p + 0.05}
            for name in ESTIMATORS for n, p in zip((2, 4, 8, 16, 32), (0.1, 0.77, 0.82, 0.9, 0.99))]
    rows = [r if r["estimator"] != "mirror" else {**r, "power": 0.0, "power_low": 0.0, "power_high": 0.01}
            for r in rows]
    needed = samples_needed(rows)
    assert needed["accuracy-difference"] == (8, 4, 16)  # 4 could reach 0.8 (0.82), 16 surely does (0.85)
    assert needed["mirror"] == (None, None, None)
    with pytest.raises(ValueError, match="power=0"):
        samples_needed(rows, power=0)


def test_when_the_control_almost_never_answers_correctly_importance_sampling_from_it_needs_far_more_samples():
    """The regime of a tuned learner against a random-answer control: the control's canonical completions (the only
    ones that carry weight) are so rare that hundreds of samples per question rarely hold one, while the accuracy
    difference sees the learner's many canonical answers at once."""
    questions = [question(0.001, 0.9)] * 8
    rows = simulate(questions, sizes(256), replications=400, seed=3)
    needed = samples_needed(rows)
    assert needed["accuracy-difference"][2] is not None and needed["accuracy-difference"][2] <= 4
    assert needed["balanced"][2] is not None and needed["balanced"][2] <= 4
    assert needed["importance"][1] is None  # not even plausible at 256
    assert normal_samples_needed(questions, "importance", 0.8, 0.95) > 256


def test_exact_sd_is_the_spread_of_one_sample():
    q = question(0.2, 0.5)
    w = 0.5 / 0.2
    assert exact_sd([q], "importance", 1) == pytest.approx(abs(w - 1) * math.sqrt(0.2 * 0.8))
    assert exact_sd([q], "accuracy-difference", 4) == pytest.approx(math.sqrt((0.16 + 0.25) / 4))


def run_script(tmp_path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, str(REPO / "launch" / "sample_efficiency.py"), "model=tiny", "logger=none",
                           "dataset.n_test=2", f"cache_dir={tmp_path}/cache", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


def test_the_script_writes_a_table_a_validation_a_summary_and_a_plot(tmp_path):
    done = run_script(tmp_path, "learner=icl-skill", "pair.test=[add/question,mul/symbol]", "--n-max", "16",
                      "--replications", "200", "--draws", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "out" / "efficiency.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["test_skill"], r["estimator"]) for r in rows} == {
        (s, e) for s in ("add/question", "mul/symbol") for e in ESTIMATORS}
    assert sorted({int(r["n"]) for r in rows}) == [2, 3, 4, 6, 8, 11, 16]
    assert {"rmse", "sd_exact", "power", "power_low", "power_high", "power_normal", "coverage"} <= set(rows[0])
    assert all(int(r["replications"]) == 200 for r in rows)
    with open(tmp_path / "out" / "validation.csv") as f:
        validation = list(csv.DictReader(f))
    assert {(v["test_skill"], v["model"]) for v in validation} == {
        (s, m) for s in ("add/question", "mul/symbol") for m in ("control", "learner")}
    assert all(int(v["draws"]) == 8 for v in validation)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.count("| exact: delta") == 2 and "samples needed" in summary and "SIMULATED" in summary
    assert "coverage there" in summary and "Real-draw validation" in summary
    assert "SIMULATED" in done.stdout
    assert (tmp_path / "out" / "efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_the_script_refuses_a_learner_without_a_control_in_one_line(tmp_path):
    done = run_script(tmp_path, "learner=tune-base")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "learner=tune-base" in done.stderr
    assert "Traceback" not in done.stderr
