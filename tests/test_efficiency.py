"""Sample-efficiency curves and the samples-needed rule, on synthetic samples with known properties, and the
launch/sample_efficiency.py script end to end on the tiny model."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntkeval.efficiency import QuestionSamples, curves, samples_needed, sizes

REPO = Path(__file__).resolve().parents[1]


def synthetic(n: int, p_control: float, p_learner: float, seed: int) -> QuestionSamples:
    """Completions whose correctness is Bernoulli; log-probs equal under both models (w = 1)."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-5, 1, n)
    return QuestionSamples(correct_c=(rng.random(n) < p_control).astype(float), lpl_c=lp, lpc_c=lp,
                           correct_l=(rng.random(n) < p_learner).astype(float), lpl_l=lp, lpc_l=lp)


def test_sizes_double_up_to_the_largest():
    assert sizes(64) == [2, 4, 8, 16, 32, 64] and sizes(10) == [2, 4, 8, 10] and sizes(2) == [2]


def test_curves_measure_error_and_a_standard_error_that_shrinks_as_one_over_root_n():
    questions = [synthetic(256, 0.3, 0.6, seed) for seed in range(8)]
    rows = curves(questions, reference=0.3, repeats=40)
    acc = {r["n"]: r for r in rows if r["estimator"] == "accuracy-difference"}
    assert acc[256]["mean"] == pytest.approx(0.3, abs=0.06)
    assert acc[64]["se"] / acc[256]["se"] == pytest.approx(2.0, rel=0.15)
    assert acc[4]["rmse"] > acc[64]["rmse"]
    assert acc[256]["power"] == 1.0 and acc[2]["power"] < 1.0
    # equal log-probs: the importance weights are all 1, so those estimates are exactly zero
    assert all(r["mean"] == 0.0 and r["se"] == 0.0 for r in rows if r["estimator"] == "importance")


def test_samples_needed_is_the_fewest_samples_with_enough_power():
    rows = [{"estimator": name, "n": n, "power": power, "se": 0.1, "mean": 0.2, "rmse": 0.1}
            for name, powers in (("accuracy-difference", (0.1, 0.5, 0.8, 1.0)), ("importance", (0.9, 0.2, 1.0, 1.0)),
                                 ("mirror", (0.0, 0.0, 0.0, 0.0)), ("balanced", (0.0, 0.0, 0.79, 1.0)))
            for n, power in zip((2, 4, 8, 16), powers)]
    assert samples_needed(rows) == {"accuracy-difference": 8, "importance": 2, "mirror": None, "balanced": 16}
    assert samples_needed(rows, power=0.5)["accuracy-difference"] == 4
    with pytest.raises(ValueError, match="power=0"):
        samples_needed(rows, power=0)


def test_when_the_control_almost_never_answers_correctly_importance_sampling_from_it_detects_nothing():
    """The regime of a tuned learner against a random-answer control: the control's correct completions (the only
    ones that carry weight) are so rare that 64 samples per question rarely hold one, while the accuracy difference
    sees the learner's many correct answers at once."""
    rng = np.random.default_rng(0)
    questions = []
    for _ in range(8):
        n = 64
        correct_c = (rng.random(n) < 0.001).astype(float)
        correct_l = (rng.random(n) < 0.9).astype(float)
        # log w = log(0.9 / 0.001) on correct completions, log(0.1 / 0.999) on wrong ones
        lw = lambda c: np.where(c == 1, np.log(0.9 / 0.001), np.log(0.1 / 0.999))  # noqa: E731
        questions.append(QuestionSamples(correct_c, lw(correct_c), np.zeros(n), correct_l, lw(correct_l), np.zeros(n)))
    rows = curves(questions, reference=0.899, repeats=20)
    needed = samples_needed(rows)
    assert needed["accuracy-difference"] is not None and needed["accuracy-difference"] <= 4
    assert needed["importance"] is None  # would be "a few samples" if judged by its standard error


def run_script(tmp_path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, str(REPO / "launch" / "sample_efficiency.py"), "model=tiny", "logger=none",
                           "dataset.n_test=2", f"cache_dir={tmp_path}/cache", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_the_script_writes_a_table_a_summary_and_a_plot(tmp_path):
    done = run_script(tmp_path, "learner=icl-skill", "pair.test=[add/question,mul/symbol]", "--n", "8",
                      "--repeats", "3", "--max-new-tokens", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "out" / "efficiency.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["test_skill"], r["estimator"]) for r in rows} == {
        (s, e) for s in ("add/question", "mul/symbol")
        for e in ("accuracy-difference", "importance", "mirror", "balanced")}
    assert sorted({int(r["n"]) for r in rows}) == [2, 4, 8]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.count("| exact |") == 2 and "samples needed" in summary
    assert (tmp_path / "out" / "efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_the_script_refuses_a_learner_without_a_control_in_one_line(tmp_path):
    done = run_script(tmp_path, "learner=tune-base", "--n", "8")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "learner=tune-base" in done.stderr
    assert "Traceback" not in done.stderr
