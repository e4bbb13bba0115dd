"""The sampled estimators of p_learner(correct) - p_control(correct), against values computed by hand."""

import math

import numpy as np
import pytest

from ntkeval.scorers import ntk
from ntkeval.stats import efficiency, estimators


def test_accuracy_difference_and_its_standard_error():
    e = estimators.accuracy_difference([1, 1, 0, 1], [0, 1, 0, 0])
    assert e.value == pytest.approx(0.75 - 0.25)
    # unbiased sample variances: 0.25 for both; each over n = 4
    assert e.variance == pytest.approx(0.25 / 4 + 0.25 / 4)
    assert e.se == pytest.approx(math.sqrt(0.125))


def test_importance_sampled_is_the_mean_of_correct_times_w_minus_one():
    correct = [1, 0, 1]
    lp_l = [math.log(0.2), math.log(0.1), math.log(0.3)]
    lp_c = [math.log(0.1), math.log(0.4), math.log(0.3)]
    terms = np.array([1 * (2.0 - 1), 0.0, 1 * (1.0 - 1)])
    e = estimators.importance_sampled(correct, lp_l, lp_c)
    assert e.value == pytest.approx(terms.mean())
    assert e.variance == pytest.approx(terms.var(ddof=1) / 3)


def test_weights_come_from_log_space_without_underflow():
    # p = e^-800 under both models: as products of probabilities these are 0/0; as a log difference w = e^1.
    e = estimators.importance_sampled([1, 1], [-799.0, -799.0], [-800.0, -800.0])
    assert e.value == pytest.approx(math.e - 1)


def test_mirror_is_the_mean_of_correct_times_one_minus_one_over_w():
    e = estimators.mirror([1, 1, 0], [math.log(0.4), math.log(0.5), math.log(0.9)],
                          [math.log(0.1), math.log(0.5), math.log(0.05)])
    assert e.value == pytest.approx(((1 - 0.25) + 0.0 + 0.0) / 3)


def test_balanced_counts_each_sample_by_the_balance_heuristic():
    # g = 2 (pL - pC) / (pL + pC) for a correct sample
    from_control = ([1, 0], [math.log(0.3), math.log(0.2)], [math.log(0.1), math.log(0.2)])
    from_learner = ([1, 1], [math.log(0.3), math.log(0.5)], [math.log(0.1), math.log(0.5)])
    g = lambda pl, pc: 2 * (pl - pc) / (pl + pc)  # noqa: E731
    want = 0.5 * ((g(0.3, 0.1) + 0) / 2 + (g(0.3, 0.1) + g(0.5, 0.5)) / 2)
    assert estimators.balanced(from_control, from_learner).value == pytest.approx(want)
    with pytest.raises(ValueError, match="as many learner samples"):
        estimators.balanced(from_control, ([1, 0, 1], [0.0] * 3, [0.0] * 3))


def test_identical_models_give_exactly_zero():
    lp = [-1.0, -2.0, -3.0]
    for e in (estimators.importance_sampled([1, 0, 1], lp, lp), estimators.mirror([1, 1, 1], lp, lp),
              estimators.balanced(([1, 0, 1], lp, lp), ([0, 1, 1], lp, lp))):
        assert e.value == 0.0 and e.variance == 0.0


def test_a_standard_error_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        estimators.accuracy([1])


def test_mean_over_questions_divides_the_variance_by_k_squared():
    m = estimators.mean_over_questions([estimators.Estimate(0.2, 0.04, 8), estimators.Estimate(0.4, 0.01, 8)])
    assert m.value == pytest.approx(0.3) and m.variance == pytest.approx(0.05 / 4) and m.n == 8


def test_the_registry_declares_each_estimator_once_as_ntk_and_efficiency_used_them():
    registry = estimators.BY_NAME
    assert efficiency.ESTIMATORS == ("accuracy-difference", "importance", "mirror", "balanced")  # its old table
    assert ntk.ESTIMATES == ("balanced", "mirror", "importance")  # the scorer's choices and default order
    assert {n: registry[n].bounds for n in ntk.ESTIMATES} == {"balanced": (-2.0, 2.0), "mirror": None,
                                                               "importance": None}
    assert {n: (e.from_control, e.from_learner, e.weighted) for n, e in registry.items()} == {
        "accuracy-difference": (True, True, False), "importance": (True, False, True),
        "mirror": (False, True, True), "balanced": (True, True, True)}
    # w = 3: importance counts w - 1 = 2 per correct control sample, mirror 1 - 1/w = 2/3 per correct learner
    # sample, balanced tanh(log 3 / 2) = (3 - 1) / (3 + 1) = 1/2 for each
    log_w = math.log(3.0)
    assert registry["importance"].coefficients(log_w) == pytest.approx((2.0, 0.0))
    assert registry["mirror"].coefficients(log_w) == pytest.approx((0.0, 2 / 3))
    assert registry["balanced"].coefficients(log_w) == pytest.approx((0.5, 0.5))
    assert registry["accuracy-difference"].coefficients(log_w) == (-1.0, 1.0)
    control = ([1, 0, 1], [math.log(0.6)] * 3, [math.log(0.2)] * 3)
    learner = ([1, 1, 0], [math.log(0.6)] * 3, [math.log(0.2)] * 3)
    assert registry["importance"].estimate(control, None) == estimators.importance_sampled(*control)
    assert registry["mirror"].estimate(None, learner) == estimators.mirror(*learner)
    assert registry["balanced"].estimate(control, learner) == estimators.balanced(control, learner)
    assert registry["accuracy-difference"].estimate(control, learner).value == pytest.approx(2 / 3 - 2 / 3)
