"""Deep-versus-surface statistics on kernels with a planted structure, and their place in the report."""

import itertools

import numpy as np
import pytest

from ntkeval.structure import STRUCTURE_COLUMNS, structure_stats

OPS = ["add", "sub", "mul", "div"]
FORMATS = ["question", "instruction", "symbol", "word"]
ARITH = [f"{o}/{f}" for o in OPS for f in FORMATS]


def rows_for(skills, value, dataset="arith", learner="tune-skill", noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return [{"model": "m", "learner": learner, "dataset": dataset, "train_skill": a, "test_skill": b,
             "delta": value(a, b) + rng.normal(0, noise)} for a, b in itertools.product(skills, skills)]


def same(part):
    return lambda a, b: a.split("/")[part] == b.split("/")[part]


def test_planted_operation_structure_is_called_deep():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.3 * same(0)(a, b)), permutations=500, resamples=500)
    assert c.verdict.startswith("m tune-skill: learning follows the operation (deep)")
    assert c.diff == pytest.approx(0.3, abs=0.02) and c.ci_low > 0.2 and c.p_value < 0.01
    assert (c.n_pairs_a, c.n_pairs_b) == (4 * 4 * 3, 4 * 4 * 3)  # per skill: 3 other formats / 3 other operations


def test_planted_format_structure_is_called_surface():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.2 * same(1)(a, b)), permutations=500, resamples=500)
    assert "follows the surface format" in c.verdict
    assert c.diff == pytest.approx(-0.2, abs=0.02) and c.ci_high < 0 and c.p_value < 0.01


def test_no_structure_is_called_unclear():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.1, noise=0.05, seed=3), permutations=500, resamples=500)
    assert "no clear structure" in c.verdict
    assert c.p_value > 0.05 and c.ci_low < 0 < c.ci_high


def test_domain_contrast_for_domain_skills():
    skills = [f"{d}/s{i}" for d in ("fractions", "geometry", "percents") for i in range(3)]
    (c,) = structure_stats(rows_for(skills, lambda a, b: 0.25 * same(0)(a, b), dataset="khanskill"),
                           permutations=500, resamples=500)
    assert c.contrast.startswith("same domain")
    assert "follows the domain (deep)" in c.verdict
    assert (c.n_pairs_a, c.n_pairs_b) == (9 * 2, 9 * 6)


def test_permutation_p_value_is_a_valid_probability_and_seeded():
    rows = rows_for(ARITH, lambda a, b: 0.05 * same(0)(a, b), noise=0.05)
    first = structure_stats(rows, seed=1, permutations=200, resamples=200)[0]
    again = structure_stats(rows, seed=1, permutations=200, resamples=200)[0]
    assert first == again
    assert 1 / 201 <= first.p_value <= 1


def test_one_contrast_per_model_and_learner():
    rows = rows_for(ARITH, lambda a, b: 0.0) + rows_for(ARITH, lambda a, b: 0.0, learner="icl-skill")
    stats = structure_stats(rows, permutations=50, resamples=50)
    assert sorted(c.learner for c in stats) == ["icl-skill", "tune-skill"]
    assert list(stats[0].row()) == STRUCTURE_COLUMNS
