"""Kernel statistics and the stage cache: paired deltas, bootstrap intervals, atomic reuse of stages."""

import json
import threading

import numpy as np
import pytest

from ntkeval.cache import StageCache, stable_hash
from ntkeval.kernel import paired_delta


def test_paired_delta_mean_and_interval():
    learner = [0.9, 0.8, 0.7, 0.6, 0.5]
    control = [0.5, 0.5, 0.5, 0.5, 0.5]
    d = paired_delta(learner, control, seed=1)
    assert d.n == 5
    assert d.delta == pytest.approx(0.2)
    # the bootstrap means of {0.4,0.3,0.2,0.1,0.0} lie within [0, 0.4] and the interval brackets the mean
    assert 0.0 <= d.ci_low < 0.2 < d.ci_high <= 0.4


def test_paired_delta_interval_is_zero_width_for_a_constant_shift():
    d = paired_delta([0.3, 0.6, 0.9], [0.2, 0.5, 0.8])
    assert (d.delta, d.ci_low, d.ci_high) == pytest.approx((0.1, 0.1, 0.1))


def test_paired_delta_is_paired_not_independent():
    # Large spread across questions but a constant per-question gain: a paired interval is tight.
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.9, size=50)
    d = paired_delta(list(base + 0.05), list(base))
    assert d.ci_high - d.ci_low < 1e-9


def test_paired_delta_is_seeded_and_validates_input():
    a, b = [0.1, 0.7, 0.4, 0.9], [0.3, 0.2, 0.6, 0.1]
    assert paired_delta(a, b, seed=3) == paired_delta(a, b, seed=3)
    with pytest.raises(ValueError):
        paired_delta([0.1], [0.1, 0.2])
    with pytest.raises(ValueError):
        paired_delta([], [])


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
    assert (path / "weights").read_text() == "ok" and (path / ".complete").exists()
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
