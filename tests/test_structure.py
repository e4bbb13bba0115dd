"""Deep-versus-surface statistics on kernels with a planted structure, and their place in the report.

Calibration over many simulated kernels (false-claim rate, power, interval coverage) is in
test_statistics_calibration.py; here each behaviour is checked on one constructed kernel.
"""

import itertools
import math

import numpy as np
import pytest
from structure_fakes import by_name, groups_of_rows

from ntkeval.report import layout, structure
from ntkeval.report.layout import pair_masks
from ntkeval.report.relabelling import min_attainable_p, one_label_p, permutation_p
from ntkeval.report.structure import IDENTITY, STRUCTURE_COLUMNS
from ntkeval.report.tables import TABLE_IDENTITY
from ntkeval.report.two_way import two_way_fit

OPS = ["add", "sub", "mul", "div"]
FORMATS = ["question", "instruction", "symbol", "word"]
ARITH = [f"{o}/{f}" for o in OPS for f in FORMATS]


def structure_stats(rows, **options):
    """The statistics with the skill groups the rows' kernels would have recorded (see structure_fakes)."""
    return structure.structure_stats(rows, groups_of_rows(rows), **options)


def layout_of(skills, kind):
    return layout.layout_of(skills, by_name(skills, kind))


def rows_for(skills, value, dataset="arith", learner="tune-skill", noise=0.01, rng_seed=0, **identity):
    rng = np.random.default_rng(rng_seed)
    return [{"model": "m", "learner": learner, "dataset": dataset, "train_skill": a, "test_skill": b,
             "delta": value(a, b) + rng.normal(0, noise), **identity} for a, b in itertools.product(skills, skills)]


def same(part):
    return lambda a, b: a.split("/")[part] == b.split("/")[part]


def grid(ops, formats):
    return [f"o{o}/f{f}" for o in range(ops) for f in range(formats)]


def domains(*sizes):
    return [f"d{d}/s{i}" for d, k in enumerate(sizes) for i in range(k)]


def test_planted_operation_structure_is_called_deep():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.3 * same(0)(a, b)), permutations=500)
    assert c.verdict.startswith("m tune-skill: learning follows the operation (deep)")
    assert c.diff == pytest.approx(0.3, abs=0.02) and c.ci_low > 0.2 and c.p_value < 0.01
    assert c.mean_a - c.mean_b == pytest.approx(c.diff)
    assert (c.n_pairs_a, c.n_pairs_b) == (4 * 4 * 3, 4 * 4 * 3)  # per skill: 3 other formats / 3 other operations


def test_planted_format_structure_is_called_surface():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.2 * same(1)(a, b)), permutations=500)
    assert "learning follows the surface format" in c.verdict
    assert c.diff == pytest.approx(-0.2, abs=0.02) and c.ci_high < 0 and c.p_value < 0.01


def test_no_structure_is_called_unclear():
    (c,) = structure_stats(rows_for(ARITH, lambda a, b: 0.1, noise=0.05, rng_seed=3), permutations=500)
    assert "no clear structure" in c.verdict
    assert c.p_value > 0.05 and c.ci_low < 0 < c.ci_high


def test_domain_contrast_for_domain_skills():
    skills = [f"{d}/s{i}" for d in ("fractions", "geometry", "percents") for i in range(3)]
    (c,) = structure_stats(rows_for(skills, lambda a, b: 0.25 * same(0)(a, b), dataset="khanskill"),
                           permutations=500)
    assert c.contrast.startswith("same domain")
    assert "learning follows the domain (deep)" in c.verdict
    assert (c.n_pairs_a, c.n_pairs_b) == (9 * 2, 9 * 6)


def test_row_and_column_effects_are_removed_exactly():
    # K = r[train] + c[test] + 0.07 * [same domain], domains of sizes 1, 2 and 5: the raw means of A and B pairs
    # mix in the large domain's column effect, the two-way model recovers 0.07 to rounding
    skills = domains(1, 2, 5)
    rng = np.random.default_rng(0)
    r, c = dict(zip(skills, rng.normal(0, 0.1, 8))), dict(zip(skills, rng.normal(0, 0.1, 8)))
    c.update({s: c[s] + 0.2 for s in skills if s.startswith("d2/")})  # the big domain is easier to test on
    (stat,) = structure_stats(rows_for(skills, lambda a, b: r[a] + c[b] + 0.07 * same(0)(a, b), "khanskill",
                                       noise=0.0), permutations=100)
    assert stat.diff == pytest.approx(0.07, abs=1e-10)
    assert stat.mean_a - stat.mean_b == pytest.approx(0.07, abs=1e-10)
    assert abs(stat.raw_diff - 0.07) > 0.05


def test_a_test_domain_effect_alone_is_not_read_as_deep():
    # no within-domain transfer; test skills of the 9-skill domain gain 0.3 more: same-domain pairs are mostly in
    # that domain's columns, so the raw contrast is large, and the old raw permutation test said "deep" at p ~ 0.001
    skills = domains(2, 3, 9)
    rng = np.random.default_rng(1)
    r = dict(zip(skills, rng.normal(0, 0.01, len(skills))))
    (c,) = structure_stats(rows_for(skills, lambda a, b: r[a] + 0.3 * b.startswith("d2/"), "khanskill",
                                    noise=0.02), permutations=1000)
    assert c.raw_diff > 0.1
    assert abs(c.diff) < 0.02 and c.p_value > 0.05
    assert "no clear structure" in c.verdict


def test_missing_entries_are_fitted_around():
    skills = domains(2, 2, 3)
    rows = [r for r in rows_for(skills, lambda a, b: 0.2 * same(0)(a, b), "khanskill", noise=0.01)
            if r["train_skill"] != "d1/s0"]  # that train skill's cell failed: its row is missing, its column is not
    (c,) = structure_stats(rows, permutations=200)
    assert c.diff == pytest.approx(0.2, abs=0.02)
    assert "learning follows the domain (deep)" in c.verdict
    assert c.n_pairs_a == 2 + 1 * 2 + 3 * 2 - 1 * 1  # d0: 2, d1: d1/s1 -> d1/s0 only, d2: 6


def test_unreadable_deltas_are_missing_entries():
    rows = rows_for(domains(2, 2, 3), lambda a, b: 0.2 * same(0)(a, b), "khanskill")
    rows[1]["delta"], rows[2]["delta"] = None, float("nan")  # a test row with no delta, one that failed
    (c,) = structure_stats(rows, permutations=100)
    assert c.n_pairs_a + c.n_pairs_b == 7 * 6 - 2
    assert c.diff == pytest.approx(0.2, abs=0.02)


def test_too_few_skills_are_inconclusive_and_report_the_question_level_contrast():
    skills = grid(2, 2)
    rows = rows_for(skills, lambda a, b: 0.25 * same(0)(a, b), noise=0.02)
    rng = np.random.default_rng(5)
    questions = []
    for r in rows:  # 16 questions per test skill, the same ids for every train skill, averaging to the entry
        d = r["delta"] + rng.normal(0, 0.1, 16)
        d += r["delta"] - d.mean()
        questions += [{"model": "m", "learner": "tune-skill", "dataset": "arith", "train_skill": r["train_skill"],
                       "test_skill": r["test_skill"], "id": f"q{k}", "delta": v} for k, v in enumerate(d)]
    (c,) = structure_stats(rows, questions=questions)
    assert c.min_p == pytest.approx(1 / 3)
    assert c.verdict.startswith("m tune-skill: inconclusive: 4 skills cannot reach p < 0.05 "
                                "(smallest attainable p = 0.333)")
    assert c.q_diff == pytest.approx(c.diff, abs=1e-12) and c.n_questions == 16
    assert 0 < c.q_ci_low < c.diff < c.q_ci_high
    assert f"[{c.q_ci_low:+.3f}, {c.q_ci_high:+.3f}]" in c.verdict
    (bare,) = structure_stats(rows)
    assert math.isnan(bare.q_ci_low) and "no per-question deltas" in bare.verdict


def test_a_grid_that_only_separates_opposite_effects_says_so():
    skills = grid(3, 2)
    one_label = rows_for(skills, lambda a, b: 0.3 * same(0)(a, b), noise=0.0)
    (c,) = structure_stats(one_label)
    assert (c.min_p, c.one_label_p) == (pytest.approx(1 / 60), pytest.approx(1 / 10))
    assert c.p_value == pytest.approx(4 / 60)  # ties with every relabelling that keeps the operations together
    assert "inconclusive: 6 skills cannot reach p < 0.05 when transfer follows the operation or the format alone" \
        in c.verdict
    both = rows_for(skills, lambda a, b: 0.3 * same(0)(a, b) - 0.3 * same(1)(a, b), noise=0.0)
    (c,) = structure_stats(both)
    assert c.p_value == pytest.approx(1 / 60) and "learning follows the operation (deep)" in c.verdict


def brute_force_min_p(layout):
    """Fraction of all n! relabellings whose (A, B) equal the observed or the swapped pair."""
    a, b = layout.masks()
    ties = 0
    for order in itertools.permutations(range(len(layout.group))):
        order = list(order)
        pa, pb = pair_masks(layout.group[order], None if layout.surface is None else layout.surface[order])
        ties += bool(((pa == a) & (pb == b)).all() or ((pa == b) & (pb == a)).all())
    return ties / math.factorial(len(layout.group))


@pytest.mark.parametrize("skills,dataset", [
    (grid(2, 2), "arith"), (grid(3, 2), "arith"), (grid(2, 3), "arith"),
    (["o0/f0", "o0/f1", "o1/f0", "o1/f1", "o2/f0", "o2/f2"], "arith"),   # not a full grid
    (["o0/f0", "o0/f1", "o1/f1", "o1/f2", "o2/f2", "o2/f0"], "arith"),   # a 3-cycle: A and B can swap
    (domains(1, 2, 3), "khanskill"), (domains(2, 2, 2), "khanskill"), (domains(3, 3), "khanskill")])
def test_min_attainable_p_counts_the_relabellings_that_tie(skills, dataset):
    layout = layout_of(skills, dataset)
    assert min_attainable_p(layout) == pytest.approx(brute_force_min_p(layout))


def test_a_noise_free_one_label_kernel_reaches_exactly_one_label_p():
    for ops, formats in [(3, 2), (4, 2), (2, 2)]:
        skills = grid(ops, formats)
        layout = layout_of(skills, "arith")
        a, b = layout.masks()
        rng = np.random.default_rng(ops)
        effects = rng.normal(0, 0.1, (2, len(skills)))
        p = []
        for part in (0, 1):  # transfer along the operation alone, then the format alone
            k = effects[0][:, None] + effects[1][None, :] + 0.2 * np.array(
                [[same(part)(x, y) for y in skills] for x in skills])
            np.fill_diagonal(k, np.nan)
            p.append(permutation_p(k, layout, two_way_fit(k, layout).diff, 0, rng)[0])
        assert max(p) == pytest.approx(one_label_p(layout))


def test_permutation_p_value_is_a_valid_probability_and_seeded():
    rows = rows_for(ARITH, lambda a, b: 0.05 * same(0)(a, b), noise=0.05)
    first = structure_stats(rows, seed=1, permutations=200)[0]
    again = structure_stats(rows, seed=1, permutations=200)[0]
    assert first == again
    assert 1 / 201 <= first.p_value <= 1 and first.relabellings == "200 random relabellings"


def test_one_contrast_per_identity_never_merged():
    assert IDENTITY == TABLE_IDENTITY  # the report's tables and these statistics group kernels alike
    zero = lambda a, b: 0.0  # noqa: E731
    rows = (rows_for(ARITH, zero) + rows_for(ARITH, zero, learner="icl-skill")
            + rows_for(ARITH, zero, scorer="exact", config_id="cfgA", seed=0)
            + rows_for(ARITH, zero, scorer="exact", config_id="cfgA", seed=1)
            + rows_for(ARITH, zero, scorer="ntk", estimate="balanced", config_id="cfgA", seed=0))
    stats = structure_stats(rows, permutations=50)
    assert sorted((c.learner, c.scorer or "", c.estimate or "", c.config_id or "", str(c.seed)) for c in stats) == [
        ("icl-skill", "", "", "", "None"), ("tune-skill", "", "", "", "None"),
        ("tune-skill", "exact", "", "cfgA", "0"), ("tune-skill", "exact", "", "cfgA", "1"),
        ("tune-skill", "ntk", "balanced", "cfgA", "0")]
    assert all(c.n_pairs_a == 48 for c in stats)  # each kernel alone: nothing merged into another
    assert list(stats[0].row()) == STRUCTURE_COLUMNS
    assert all(c.verdict.startswith(f"m {c.learner}: ") for c in stats)


def test_questions_of_another_identity_are_not_used():
    rows = rows_for(grid(2, 2), lambda a, b: 0.1, rng_seed=2, scorer="exact")
    questions = [{**{k: r.get(k) for k in IDENTITY}, "scorer": "ntk", "train_skill": r["train_skill"],
                  "test_skill": r["test_skill"], "id": k, "delta": r["delta"]} for r in rows for k in range(4)]
    (c,) = structure_stats(rows, questions=questions)
    assert math.isnan(c.q_diff) and c.n_questions == 0
