"""Kernel statistics and the stage cache: paired deltas, bootstrap intervals, atomic reuse of stages."""

import json
import threading

import numpy as np
import pytest

from ntkeval.cache import StageCache, stable_hash
from ntkeval.stats.intervals import METHODS, mean_interval, paired_delta, pooled_delta, t_quantile


def test_paired_delta_mean_and_interval():
    learner = [0.9, 0.8, 0.7, 0.6, 0.5]
    control = [0.5, 0.5, 0.5, 0.5, 0.5]
    d = paired_delta(learner, control, seed=1)
    assert (d.n, d.method) == (5, "bounded")
    assert d.delta == pytest.approx(0.2)
    # the bounded interval holds every mean a resample of {0.4, ..., 0} can have, and more: 5 questions cannot
    # rule out a sixth kind of question moving p by up to +-1
    assert -1.0 <= d.ci_low < 0.0 < 0.2 < 0.4 < d.ci_high <= 1.0


def test_a_sample_without_spread_still_gets_an_interval():
    # 16 questions that all moved by exactly 0.1 (or not at all): a percentile bootstrap would say [0.1, 0.1], yet
    # a gain of +0.9 on one question in five goes unseen in 16 draws 2.8% of the time. The interval is as wide as
    # Dirichlet weights make it: the pseudo-observation's weight is Beta(1, 16), whose 97.5% point is
    # 1 - 0.025^(1/16) = 0.206 (Monte Carlo with 20000 draws: within 0.005)
    edge = 1 - 0.025 ** (1 / 16)
    zero = paired_delta([0.5] * 16, [0.5] * 16, resamples=20000)
    assert (zero.ci_low, zero.ci_high) == (pytest.approx(-edge, abs=0.005), pytest.approx(edge, abs=0.005))
    shift = paired_delta([0.6] * 16, [0.5] * 16, resamples=20000)
    assert shift.delta == pytest.approx(0.1)
    assert (shift.ci_low, shift.ci_high) == (pytest.approx(0.1 - 1.1 * edge, abs=0.006),
                                             pytest.approx(0.1 + 0.9 * edge, abs=0.006))


def test_paired_delta_is_paired_not_independent():
    # Large spread across questions but a constant per-question gain: only the differences matter
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.9, size=50)
    paired = paired_delta(list(base + 0.05), list(base))
    constant = paired_delta([0.05] * 50, [0.0] * 50)
    assert (paired.delta, paired.ci_low, paired.ci_high) == pytest.approx((0.05, constant.ci_low, constant.ci_high))
    t = paired_delta(list(base + 0.05), list(base), method="t")  # no spread in the differences: no width
    assert (t.ci_low, t.ci_high) == pytest.approx((0.05, 0.05))


def test_paired_delta_is_seeded_and_validates_input():
    a, b = [0.1, 0.7, 0.4, 0.9], [0.3, 0.2, 0.6, 0.1]
    assert paired_delta(a, b, seed=3) == paired_delta(a, b, seed=3)
    with pytest.raises(ValueError):
        paired_delta([0.1], [0.1, 0.2])
    with pytest.raises(ValueError):
        paired_delta([], [])
    with pytest.raises(ValueError):
        paired_delta(a, b, method="bogus")


def test_values_outside_the_bounds_fall_back_to_bca():
    # importance-sampled per-question estimates are not probabilities: no bound is known, so BCa, not a wrong bound
    d = paired_delta([2.5, 0.1, 0.0, 0.3, 0.2], [0.0] * 5)
    assert d.method == "bca" and d.ci_high <= 2.5
    assert paired_delta([0.5, 0.1], [0.0, 0.0], bounds=None).method == "bca"


def test_every_method_brackets_the_mean():
    x = np.random.default_rng(4).normal(0.1, 0.2, 20).clip(-1, 1)
    for method in METHODS:
        d = mean_interval(x, method=method)
        assert d.ci_low < d.delta < d.ci_high and d.method == method


def test_pooled_delta_is_the_mean_of_seed_means():
    d = pooled_delta([[0.1, 0.3, 0.2], [0.2, 0.4, 0.3], [0.0, 0.2, 0.1, 0.1, 0.1]])
    assert d.n == 11 and d.delta == pytest.approx((0.2 + 0.3 + 0.1) / 3)
    assert d.ci_low < d.delta < d.ci_high
    # the t part: seed means 0.2, 0.3, 0.1 have sd 0.1, so t(2 df) * 0.1 / sqrt(3) on each side at least
    assert d.ci_high - d.delta >= t_quantile(0.95, 2) * 0.1 / np.sqrt(3) - 1e-12
    one = pooled_delta([[0.1, 0.3, 0.2]])
    assert (one.ci_low, one.ci_high) == (mean_interval([0.1, 0.3, 0.2]).ci_low, mean_interval([0.1, 0.3, 0.2]).ci_high)
    with pytest.raises(ValueError):
        pooled_delta([[0.1], []])


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423),
                                         (120, 1.9799), (10 ** 6, 1.9600)])
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.95, df + 0.7) == t_quantile(0.95, df)  # fractional df round down: the wider interval


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_record_is_computed_once_and_reused(tmp_path):
    calls = []
    cache = StageCache(tmp_path)
    first = cache.record("scores", {"x": 1}, lambda: calls.append(1) or [1.5, 2.5])
    again = StageCache(tmp_path).record("scores", {"x": 1}, lambda: calls.append(1) or [9.9])
    assert first == again == [1.5, 2.5]
    assert len(calls) == 1
    assert cache.misses == {"scores": 1}


def test_corrupt_record_is_rebuilt(tmp_path):
    cache = StageCache(tmp_path)
    cache.record("scores", {"x": 1}, lambda: [1])
    (path,) = (tmp_path / "scores").glob("*.json")
    path.write_text('{"key": {"x": 1}, "value": [1')  # a half-written file from a killed job
    assert cache.record("scores", {"x": 1}, lambda: [2]) == [2]
    assert json.loads(path.read_text())["value"] == [2]


def test_directory_entries_are_atomic_and_incomplete_ones_rebuilt(tmp_path):
    cache = StageCache(tmp_path)

    def boom(tmp):
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.directory("adapters", {"a": 1}, boom)
    assert not [p for p in (tmp_path / "adapters").iterdir() if p.is_dir()]  # nothing half-written is left

    built = []
    path = cache.directory("adapters", {"a": 1}, lambda tmp: built.append((tmp / "weights").write_text("ok")))
    assert (path / "weights").read_text() == "ok" and (path / ".complete").exists() and (path / "manifest.json").exists()
    assert cache.directory("adapters", {"a": 1}, lambda tmp: built.append(1)) == path
    assert len(built) == 1


def test_concurrent_requests_compute_once(tmp_path):
    calls = []
    gate = threading.Event()

    def slow():
        calls.append(1)
        gate.wait(0.5)
        return 42

    results = []
    threads = [threading.Thread(target=lambda: results.append(StageCache(tmp_path).record("s", {"k": 0}, slow)))
               for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert results == [42] * 4
    assert len(calls) == 1
