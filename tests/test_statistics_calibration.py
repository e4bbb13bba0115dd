"""Calibration by seeded simulation: every interval's coverage and the structure test's error rates.

Kernel-entry intervals (ntkeval.kernel) are checked on the shapes launch/coverage.py tables (loaded from there, so
the table and the tests cannot drift apart). Each check that a method covers comes with one showing that the
simulation can tell: the method it replaced fails on the same draws.
"""

import importlib.util
from pathlib import Path

import pytest

from ntkeval.kernel import mean_interval

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("coverage_script", REPO / "launch" / "coverage.py")
COVERAGE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(COVERAGE)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small least-squares fits gain nothing from BLAS threads and, on a shared machine, lose time to them."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only speed depends on it
        yield
        return
    with threadpool_limits(1):
        yield


def covered(method: str, shape: str, n: int, reps: int, seed: int) -> float:
    sampler, truth = COVERAGE.SHAPES[shape]
    return COVERAGE.coverage(COVERAGE.method_interval(method, 1000), lambda rng: sampler(rng, n), truth, reps, seed)[0]


@pytest.mark.parametrize("n", [8, 16])
@pytest.mark.parametrize("shape", list(COVERAGE.SHAPES))
def test_bounded_interval_covers_every_gain_shape(shape, n):
    assert covered("bounded", shape, n, reps=400, seed=n) >= 0.93


def test_the_percentile_bootstrap_it_replaces_undercovers_sparse_gains():
    # at 16 questions and gains on 10% of them, 18.5% of samples show no gain at all and collapse to [0, 0]
    assert covered("percentile", "sparse 10%", 16, reps=400, seed=16) < 0.85


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_bounded_interval_covers_the_worst_case_for_16_questions(sign):
    # a change of +-1 on one question in five, none elsewhere: the two-point law that the bound is tight against
    draw = lambda rng: sign * (rng.random(16) < 0.2)  # noqa: E731
    cov, _ = COVERAGE.coverage(lambda x, rep: (lambda d: (d.ci_low, d.ci_high))(mean_interval(x, seed=rep)),
                               draw, sign * 0.2, reps=600, seed=7)
    assert cov >= 0.93


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_pooled_delta_covers_seed_and_question_variation(seeds):
    for k, (shape, (draw, truth)) in enumerate(COVERAGE.SEEDED.items()):
        cov, _ = COVERAGE.coverage(COVERAGE.pooled_interval(1000), lambda rng: draw(rng, seeds, 16), truth, 200,
                                   100 * seeds + k)
        assert cov >= 0.93, shape


def test_a_two_stage_bootstrap_over_two_seeds_undercovers():
    draw, truth = COVERAGE.SEEDED["dense, seed sd 0.15"]
    cov, _ = COVERAGE.coverage(COVERAGE.two_stage_bootstrap(1000), lambda rng: draw(rng, 2, 16), truth, 200, 3)
    assert cov < 0.85
