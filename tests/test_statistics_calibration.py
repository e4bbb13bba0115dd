"""Calibration by seeded simulation: every interval's coverage and the structure test's error rates.

Kernel-entry intervals (ntkeval.stats.intervals) are checked on the shapes launch/coverage.py tables (loaded from there, so
the table and the tests cannot drift apart). Each check that a method covers comes with one showing that the
simulation can tell: the method it replaced fails on the same draws.

The deep-versus-surface verdict (ntkeval.report.structure) is checked on simulated kernels K = r + c + e whose train-skill
effects r carry a train-format part and whose test-skill effects c carry a test-domain (or test-operation) part,
the confound that made raw contrasts read as structure, with KhanSkill's unequal domain sizes and the paper's
6 x 4 arithmetic grid; then with within-group transfer beta planted on top, in units of the noise sd.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from structure_fakes import by_name, groups_of_rows

from ntkeval.report import layout, structure
from ntkeval.report.structure import contrast_of, verdict_text
from ntkeval.report.two_way import skill_jackknife, two_way_fit
from ntkeval.stats.intervals import mean_interval

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


NOISE = 0.02  # sd of a kernel entry around r + c (+ beta): question sampling and adaptation noise


def domains(*sizes):
    return [f"d{d}/s{i}" for d, k in enumerate(sizes) for i in range(k)], "khanskill"


def grid(ops, formats):
    return [f"o{o}/f{f}" for o in range(ops) for f in range(formats)], "arith"


LAYOUTS = {"domains 1,2,5": domains(1, 2, 5), "domains 2,3,9": domains(2, 3, 9),
           "khanskill-cpu 2,2,2": domains(2, 2, 2), "arith 4x2": grid(4, 2), "arith 6x4": grid(6, 4)}


def null_kernel(skills, rng):
    """r[i] + c[j] + noise: each skill's own effects plus a train-format part in r and a test-group part in c."""
    groups = [s.split("/")[0] for s in skills]
    surfaces = [s.split("/")[1] for s in skills]
    by_group = {g: rng.normal(0, 0.1) for g in groups}
    by_surface = {f: rng.normal(0, 0.1) for f in surfaces}
    r = rng.normal(0, 0.05, len(skills)) + np.array([by_surface[f] for f in surfaces])
    c = rng.normal(0, 0.05, len(skills)) + np.array([by_group[g] for g in groups])
    kernel = r[:, None] + c[None, :] + rng.normal(0, NOISE, (len(skills), len(skills)))
    np.fill_diagonal(kernel, np.nan)
    return kernel


def same_group(skills):
    groups = [s.split("/")[0] for s in skills]
    return np.array([[a == b for b in groups] for a in groups], dtype=float)


def planted_kernel(skills, rng, beta, tau=0.0):
    """The null plus within-group transfer beta + u[i] for pairs sharing the operation (or domain), u ~ N(0, tau)."""
    return null_kernel(skills, rng) + (beta + rng.normal(0, tau, len(skills)))[:, None] * same_group(skills)


def verdicts(name, kernel_of, reps, permutations=200):
    skills, dataset = LAYOUTS[name]
    out = []
    for rep in range(reps):
        groups = by_name(skills, dataset)
        stats = contrast_of(kernel_of(skills, np.random.default_rng(rep)), skills, groups, seed=rep,
                            permutations=permutations)
        out.append((verdict_text("m l", groups, stats), stats))
    return out


@pytest.mark.parametrize("name,reps", [("domains 1,2,5", 200), ("domains 2,3,9", 200), ("arith 4x2", 200),
                                       ("arith 6x4", 60)])
def test_null_kernels_with_skill_effects_are_not_called_structured(name, reps):
    runs = verdicts(name, null_kernel, reps)
    claims = sum("learning follows" in v for v, _ in runs) / reps
    assert claims <= 0.10
    raw = np.mean([abs(s["raw_diff"]) for _, s in runs])
    adjusted = np.mean([abs(s["diff"]) for _, s in runs])
    if name.startswith("domains"):  # unequal domains: the raw contrast carries the planted skill effects
        assert raw > 2 * adjusted
    else:  # a full grid is balanced (every row and column holds as many A and B pairs), so raw was fair there
        assert raw == pytest.approx(adjusted)


def test_a_failed_cell_unbalances_a_grid_and_the_null_still_holds():
    # one train skill's row missing: its column's A and B pairs no longer balance, and raw contrasts drift
    def kernel(skills, rng):
        k = null_kernel(skills, rng)
        k[0, :] = np.nan
        return k
    runs = verdicts("arith 4x2", kernel, 200)
    assert sum("learning follows" in v for v, _ in runs) / 200 <= 0.10


def test_six_skills_in_three_domains_are_always_inconclusive():
    for verdict, stats in verdicts("khanskill-cpu 2,2,2", lambda s, rng: planted_kernel(s, rng, 10 * NOISE), 50):
        assert stats["min_p"] == pytest.approx(1 / 15)
        assert "inconclusive: 6 skills cannot reach p < 0.05 (smallest attainable p = 0.0667)" in verdict


@pytest.mark.parametrize("name,beta,reps", [("domains 1,2,5", 2 * NOISE, 100), ("domains 2,3,9", NOISE, 100),
                                            ("arith 4x2", 2 * NOISE, 100), ("arith 6x4", NOISE, 30)])
def test_within_group_transfer_is_detected(name, beta, reps):
    runs = verdicts(name, lambda s, rng: planted_kernel(s, rng, beta), reps)
    deep = "the operation (deep)" if LAYOUTS[name][1] == "arith" else "the domain (deep)"
    assert sum(f"learning follows {deep}" in v for v, _ in runs) / reps >= 0.80


@pytest.mark.parametrize("name,reps", [("domains 1,2,5", 200), ("arith 4x2", 200), ("arith 6x4", 40)])
def test_skill_interval_covers_the_mean_transfer(name, reps):
    # each train skill transfers beta + u[i] within its group; the interval over skills is for beta
    skills, dataset = LAYOUTS[name]
    arrangement = layout.layout_of(skills, by_name(skills, dataset))
    hits = 0
    for rep in range(reps):
        low, high = skill_jackknife(planted_kernel(skills, np.random.default_rng(rep), 0.05, tau=NOISE),
                                   arrangement)
        hits += bool(low <= 0.05 <= high)
    assert hits / reps >= 0.93


def per_question_sweep(skills, dataset, m, rng, rate=0.25):
    """Kernel rows and per-question deltas with sparse gains: a question of test skill j can be unlocked (chance
    `rate`, the same for every train skill) and then gains mu[i, j] / rate * U(0.5, 1.5), so its mean is mu."""
    n = len(skills)
    mu = 0.03 + 0.02 * rng.random((n, 1)) + 0.02 * rng.random((1, n)) + 0.08 * same_group(skills)
    unlockable = rng.random((n, m)) < rate
    rows, questions = [], []
    for i, train in enumerate(skills):
        for j, test in enumerate(skills):
            d = unlockable[j] * mu[i, j] / rate * rng.uniform(0.5, 1.5, m)
            key = {"model": "m", "learner": "l", "dataset": dataset, "train_skill": train, "test_skill": test}
            rows.append({**key, "delta": d.mean()})
            questions += [{**key, "id": q, "delta": d[q]} for q in range(m)]
    np.fill_diagonal(mu, np.nan)
    return rows, questions, two_way_fit(mu, layout.layout_of(skills, by_name(skills, dataset))).diff


@pytest.mark.parametrize("layout", [grid(2, 2), grid(3, 2), domains(1, 2, 5)])
def test_question_interval_covers_with_skills_fixed(layout):
    skills, dataset = layout
    hits = 0
    for rep in range(200):
        rows, questions, truth = per_question_sweep(skills, dataset, 16, np.random.default_rng(rep))
        (c,) = structure.structure_stats(rows, groups_of_rows(rows), questions=questions, permutations=20)
        hits += bool(c.q_ci_low <= truth <= c.q_ci_high)
    assert hits / 200 >= 0.93
