"""The statistics that compare kernels (ntkeval.stats.kernels, and the question-level intervals of
ntkeval.report.comparisons): exact values by hand, tests calibrated under nulls with additive skill effects, their
power, and the coverage of every interval, by seeded simulation."""

import itertools
import math

import numpy as np
import pytest

from ntkeval.report.comparisons import paired_contrast
from ntkeval.report.two_way import question_contrast
from ntkeval.stats import kernels as st

HAND = np.array([[1.0, 0.0, 0.0],
                 [0.0, 2.0, 0.0],
                 [0.0, 1.0, 3.0]])


def additive(rng, n, sd):
    """Train- and test-skill effects r[i] + c[j]: what every learner adds to whole rows and columns."""
    return rng.normal(0, sd, (n, 1)) + rng.normal(0, sd, (1, n))


def test_specificity_by_hand():
    # diagonal mean 2, off-diagonal mean 1/6
    assert st.specificity(HAND) == pytest.approx(2 - 1 / 6)
    assert st.row_specificities(HAND) == pytest.approx([1.0, 2.0, 2.5])  # 3 - (0 + 1) / 2
    assert st.row_specificities(HAND).mean() == pytest.approx(st.specificity(HAND))
    assert st.scaled_specificity(HAND) == pytest.approx((2 - 1 / 6) / np.std(HAND, ddof=1))
    missing = HAND.copy()
    missing[2, 1], missing[0, 0] = np.nan, np.nan  # what is there: diagonal 2, 3; off-diagonal five zeros
    assert st.specificity(missing) == pytest.approx(2.5)
    assert np.isnan(st.row_specificities(missing)[[0]]).all() and st.row_specificities(missing)[2] == 3.0
    weights = st.specificity_weights(~np.isnan(missing))
    assert np.nansum(weights * missing) == pytest.approx(2.5) and weights.sum() == pytest.approx(0.0)
    assert st.specificity_weights(np.eye(3, dtype=bool)) is None  # no off-diagonal entry
    assert math.isnan(st.specificity(np.where(np.eye(2, dtype=bool), 1.0, np.nan)))


def test_specificity_relabelling_test_by_hand():
    # diag(3, 2, 1): total 6; a relabelling putting D on the diagonal gives D/3 - (6 - D)/6. Identity D = 6: S = 2;
    # the swaps fixing skill 0, 1, 2: D = 3, 2, 1: S = 0.5, 0, -0.5; the two 3-cycles: D = 0: S = -1
    test = st.specificity_test(np.diag([3.0, 2.0, 1.0]))
    assert (test.statistic, test.p_greater, test.p_two_sided) == pytest.approx((2.0, 1 / 6, 1 / 6))
    assert test.how == "all 6 relabellings of the test skills"
    values = sorted(st.relabelled_specificities(np.diag([3.0, 2.0, 1.0]), st.relabellings(3, 0, None)[0]))
    assert values == pytest.approx([-1, -1, -0.5, 0, 0.5, 2])
    # an off-diagonal entry the identity does not put first: S = 1.8333 is beaten by none, tied by none
    assert st.specificity_test(HAND).p_greater == pytest.approx(1 / 6)


def test_additive_skill_effects_cancel_in_every_relabelling():
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 1, (5, 5))
    orders = st.relabellings(5, 0, rng)[0]
    shifted = kernel + additive(rng, 5, 3.0) + 7.0
    assert st.relabelled_specificities(shifted, orders) == pytest.approx(st.relabelled_specificities(kernel, orders))
    assert st.specificity_test(shifted).p_greater == st.specificity_test(kernel).p_greater


def test_random_relabellings_beyond_eight_skills_are_seeded_and_counted():
    kernel = np.random.default_rng(1).normal(0, 1, (10, 10))
    first, again = st.specificity_test(kernel, 500, seed=3), st.specificity_test(kernel, 500, seed=3)
    assert first == again and first.how == "500 random relabellings of the test skills"
    assert 1 / 501 <= first.p_greater <= 1 and st.min_p(10, 500) == 1 / 501 and st.min_p(4) == 1 / 24


def test_sign_flip_test_by_hand():
    # 1 -2 3: sums of +-1 +-2 +-3 are 6, 4, 2, 0, 0, -2, -4, -6; the observed is 2
    test = st.sign_flip_test(np.array([1.0, -2.0, 3.0]))
    assert (test.statistic, test.p_greater, test.p_two_sided) == pytest.approx((2 / 3, 3 / 8, 6 / 8))
    assert st.sign_flip_test(np.array([1.0, 2.0, 3.0, np.nan])).p_two_sided == pytest.approx(2 / 8)  # NaN dropped
    assert st.sign_flip_test(np.ones(14), 300).how == "300 random sign flips of the rows"


def test_cka_by_hand_and_its_invariances():
    # K = e0 e0', L = e1 e1': centred, each has squared norm 4/9 and their inner product is 1/9: CKA = 1/4
    k, l = np.zeros((3, 3)), np.zeros((3, 3))
    k[0, 0], l[1, 1] = 1.0, 1.0
    assert st.cka(k, l) == pytest.approx(0.25)
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, (5, 5)), rng.normal(0, 1, (5, 5))  # not symmetric
    h = np.eye(5) - 1 / 5
    by_definition = np.sum((h @ a @ h) * (h @ b @ h)) / (np.linalg.norm(h @ a @ h) * np.linalg.norm(h @ b @ h))
    assert st.cka(a, b) == pytest.approx(by_definition)
    assert st.cka(a, a) == pytest.approx(1.0) and st.cka(a, -a) == pytest.approx(-1.0)
    assert st.cka(a, b) == pytest.approx(st.cka(b, a))
    assert st.cka(a, 3.0 * b + 2.0) == pytest.approx(st.cka(a, b))
    assert st.cka(a, b + additive(rng, 5, 2.0)) == pytest.approx(st.cka(a, b))
    assert math.isnan(st.cka(a, additive(rng, 5, 1.0)))  # nothing left once centred


def test_cka_joint_relabelling_p_by_hand():
    # K = L = e0 e0': a joint relabelling gives CKA 1 exactly when it keeps skill 0 in place (2 of 6), else 1/4
    k = np.zeros((3, 3))
    k[0, 0] = 1.0
    test = st.cka_test(k, k)
    assert (test.statistic, test.p_greater) == pytest.approx((1.0, 2 / 6))
    orders = list(itertools.permutations(range(3)))
    by_hand = [st.cka(k, k[np.ix_(o, o)]) for o in orders]
    assert sorted(by_hand) == pytest.approx([0.25] * 4 + [1.0] * 2)


def test_mover_and_entry_intervals_by_hand():
    low, high = st.mover_difference(0.5, (0.3, 0.6), 0.2, (0.1, 0.5))
    assert (low, high) == pytest.approx((0.3 - math.hypot(0.2, 0.3), 0.3 + math.hypot(0.1, 0.1)))
    weights = np.array([[0.5, -0.5], [-0.5, 0.5]])  # diagonal mean minus off-diagonal mean of a 2 x 2 kernel
    kernel = np.array([[0.4, 0.1], [0.0, 0.3]])
    low, high = st.entry_interval(weights, kernel, kernel - 0.1, kernel + 0.2)
    # per column, distances add: down 0.5 * 0.1 + 0.5 * 0.2 = 0.15, up 0.5 * 0.2 + 0.5 * 0.1 = 0.15
    assert (low, high) == pytest.approx((0.3 - math.hypot(0.15, 0.15), 0.3 + math.hypot(0.15, 0.15)))


def test_paired_difference_halves_into_the_bounded_interval():
    d_a, d_b = np.array([1.0, 1.0, -1.0, 0.5]), np.array([-1.0, 0.0, 1.0, 0.5])  # differences 2, 1, -2, 0
    mean, low, high = st.paired_difference(d_a, d_b)
    assert mean == pytest.approx(0.25) and -2 <= low < mean < high <= 2


def test_specificity_relabelling_test_is_calibrated_and_has_power():
    rng = np.random.default_rng(3)
    null = [st.specificity_test(additive(rng, 6, 1.0) + rng.normal(0, 0.3, (6, 6))).p_greater for _ in range(300)]
    assert 0.02 <= np.mean(np.array(null) <= 0.05) <= 0.08
    planted = [st.specificity_test(additive(rng, 6, 1.0) + rng.normal(0, 0.3, (6, 6)) + 0.6 * np.eye(6)).p_greater
               for _ in range(100)]  # a diagonal advantage of 2 noise sd
    assert np.mean(np.array(planted) <= 0.05) >= 0.9


def test_comparison_tests_are_calibrated_and_the_relabelling_one_has_power():
    """p_value (relabelling A - B) holds alpha when the kernels differ by additive effects; the sign-flip test holds
    it when their rows are exchangeable, is conservative when test-skill effects differ, and then loses its power."""
    rng = np.random.default_rng(4)
    counts = {"relabel": 0, "flip shared": 0, "flip different": 0}
    reps = 300
    for _ in range(reps):
        shared = additive(rng, 7, 1.0)
        a, b = shared + rng.normal(0, 0.3, (7, 7)), shared + rng.normal(0, 0.3, (7, 7))
        counts["flip shared"] += st.sign_flip_test(st.row_specificities(a) - st.row_specificities(b)).p_two_sided \
            <= 0.05
        a = additive(rng, 7, 1.0) + rng.normal(0, 0.3, (7, 7))
        b = 3 * additive(rng, 7, 1.0) + rng.normal(0, 0.6, (7, 7))  # larger skill effects, noisier
        counts["relabel"] += st.specificity_test(a - b).p_two_sided <= 0.05
        counts["flip different"] += st.sign_flip_test(st.row_specificities(a) - st.row_specificities(b)).p_two_sided \
            <= 0.05
    rates = {k: v / reps for k, v in counts.items()}
    assert 0.02 <= rates["relabel"] <= 0.08 and 0.02 <= rates["flip shared"] <= 0.08
    assert rates["flip different"] <= 0.08
    power = {"relabel": 0, "flip": 0}
    for _ in range(60):  # A's diagonal 3 noise sd above its off-diagonal, B's not at all; their own skill effects
        a = additive(rng, 7, 1.0) + rng.normal(0, 0.3, (7, 7)) + 0.9 * np.eye(7)
        b = additive(rng, 7, 1.0) + rng.normal(0, 0.3, (7, 7))
        power["relabel"] += st.specificity_test(a - b).p_two_sided <= 0.05
        power["flip"] += st.sign_flip_test(st.row_specificities(a) - st.row_specificities(b)).p_two_sided <= 0.05
    assert power["relabel"] / 60 >= 0.9 and power["flip"] / 60 < 0.5


def test_cka_relabelling_p_is_calibrated_with_a_shared_diagonal_and_has_power():
    rng = np.random.default_rng(5)
    null = [st.cka_test(additive(rng, 5, 1.0) + rng.normal(0, 1, (5, 5)) + 2 * np.eye(5),
                        additive(rng, 5, 1.0) + rng.normal(0, 1, (5, 5)) + 0.5 * np.eye(5)).p_greater
            for _ in range(300)]  # both diagonals high: a joint relabelling keeps them, so they are no evidence
    assert 0.02 <= np.mean(np.array(null) <= 0.05) <= 0.08
    alike = []
    for _ in range(60):
        pattern = rng.normal(0, 1, (6, 6))
        alike.append(st.cka_test(pattern, pattern + rng.normal(0, 0.5, (6, 6)) + additive(rng, 6, 2.0)).p_greater)
    assert np.mean(np.array(alike) <= 0.05) >= 0.9


def per_question(deltas, skills):
    return {(skills[i], skills[j]): dict(enumerate(deltas[i, j])) for i in range(len(skills))
            for j in range(len(skills))}


def test_question_level_intervals_cover():
    """Per-question deltas d[i, j, q] = mu[i, j] + u[j, q] + e: test skill j's questions shared by every train skill
    (and by both kernels); the specificity of mu is the target, the skills fixed."""
    rng = np.random.default_rng(6)
    n, m, reps = 5, 16, 300
    skills = [f"s{i}" for i in range(n)]
    weights = st.specificity_weights(np.ones((n, n), dtype=bool))
    hits = {"one kernel": 0, "paired": 0, "MOVER of question intervals": 0, "entries": 0}
    for _ in range(reps):
        mu_a = additive(rng, n, 0.1) + 0.2 * np.eye(n)
        mu_b = additive(rng, n, 0.1) + 0.1 * np.eye(n)
        u = rng.normal(0, 0.3, (n, m))
        d_a = mu_a[:, :, None] + u[None] + rng.normal(0, 0.3, (n, n, m))
        d_b = mu_b[:, :, None] + u[None] + rng.normal(0, 0.3, (n, n, m))
        q_a, q_b = per_question(d_a, skills), per_question(d_b, skills)
        truth_a, truth = st.specificity(mu_a), st.specificity(mu_a) - st.specificity(mu_b)
        _, low_a, high_a, count = question_contrast(weights, skills, q_a)
        hits["one kernel"] += low_a <= truth_a <= high_a
        _, low, high, _ = paired_contrast(weights, skills, q_a, q_b)
        hits["paired"] += low <= truth <= high
        _, low_b, high_b, _ = question_contrast(weights, skills, q_b)
        low, high = st.mover_difference(st.specificity(d_a.mean(2)), (low_a, high_a), st.specificity(d_b.mean(2)),
                                        (low_b, high_b))
        hits["MOVER of question intervals"] += low <= truth <= high
        kernel, half = d_a.mean(2), 2.131 * d_a.std(2, ddof=1) / math.sqrt(m)  # each entry's own t interval
        low, high = st.entry_interval(weights, kernel, kernel - half, kernel + half)
        hits["entries"] += low <= truth_a <= high
    assert count == m
    coverage = {k: v / reps for k, v in hits.items()}
    assert min(coverage.values()) >= 0.93, coverage


def test_skill_jackknife_of_the_difference_covers_over_skills():
    """Skills drawn from a population whose diagonal advantage varies by skill around 0.1: would other skills like
    these show the difference?"""
    rng = np.random.default_rng(7)
    hits, reps = 0, 1000  # cheap; fewer make a 0.955 coverage land on the threshold by chance
    for _ in range(reps):
        diff = additive(rng, 8, 0.2) + np.diag(0.1 + rng.normal(0, 0.1, 8)) + rng.normal(0, 0.1, (8, 8))
        low, high = st.skill_jackknife(diff, st.specificity)
        hits += low <= 0.1 <= high
    assert hits / reps >= 0.93


def test_paired_difference_covers_sparse_gains():
    rng = np.random.default_rng(8)
    hits = 0
    for _ in range(200):  # A gains +1 on a fifth of the questions, B loses 1 on a tenth: the difference is 0.3
        d_a, d_b = (rng.random(16) < 0.2).astype(float), -(rng.random(16) < 0.1).astype(float)
        _, low, high = st.paired_difference(d_a, d_b, seed=int(rng.integers(1 << 30)))
        hits += low <= 0.3 <= high
    assert hits / 200 >= 0.93


def test_the_tests_do_not_depend_on_the_kernels_scale():
    """A kernel of tiny deltas (a predicted kernel, a tiny model) gets the p of the same kernel at scale 1: ties are
    judged relative to the statistic's scale, not to 1."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(5, 5)) + 2.0 * np.eye(5)
    other = rng.normal(size=(5, 5))
    flips = np.array([0.9, 1.2, -0.1, 0.8, 1.1])
    for scale in (1e-6, 1e-9, 1e-12):
        assert st.specificity_test(kernel * scale).p_greater == pytest.approx(st.specificity_test(kernel).p_greater)
        assert st.sign_flip_test(flips * scale).p_greater == pytest.approx(st.sign_flip_test(flips).p_greater)
        assert st.cka_test(kernel * scale, other).p_greater == pytest.approx(st.cka_test(kernel, other).p_greater)
    assert st.specificity_test(kernel).p_greater < 0.05
    assert st.specificity_test(np.zeros((4, 4))).p_greater == 1.0  # nothing moved: every relabelling ties


def test_kernels_scored_on_different_questions_are_not_paired():
    """Two configurations of one data set with different n_test share only some question ids: the paired interval,
    over the shared questions alone, would not be an interval for the kernels' difference; MOVER is used instead."""
    skills = ["a", "b", "c"]
    weights = st.specificity_weights(np.ones((3, 3), dtype=bool))
    q_a = {(t, s): {f"{s}/{k}": 0.5 for k in range(8)} for t in skills for s in skills}
    q_b = {(t, s): {f"{s}/{k}": 0.1 for k in range(4)} for t in skills for s in skills}
    assert all(math.isnan(v) for v in paired_contrast(weights, skills, q_a, q_b)[:3])
    same = {(t, s): {f"{s}/{k}": 0.1 for k in range(8)} for t in skills for s in skills}
    assert math.isfinite(paired_contrast(weights, skills, q_a, same)[1])
