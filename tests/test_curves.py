"""Learning curves (issue 13, item 2): learner.curve scores the learner and its control at each adaptation size from
one run. In-context sizes are prefixes of the full draw, LoRA sizes are the adapters saved while the full ones train
(bit for bit an s-step run's), the full size is the main kernel, size 0 is exactly 0, reruns compute nothing, bad
curves are one line before any model loads, and the report draws and tabulates the curves."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from ntkeval.backends.huggingface.session import HFSession
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.formats.writing import written_answer
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.learning_curve import mirror_curve
from ntkeval.prompts import PromptFormat
from ntkeval.report.curves import GroupCurve, group_curves, speed_row, write_curves
from ntkeval.scorers.exact import ExactScorer
from ntkeval.stats.intervals import mean_interval
from ntkeval.tracking.base import NullTracker

TRAIN, TESTS = "add/question", ["add/question", "mul/symbol"]


def make_cell(tmp_path, learner, cache: str = "cache") -> Cell:
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner,
                dataset=ArithDataset(seed=0, n_train=8, n_test=4), train_skill=TRAIN, test_skills=TESTS,
                scorer=ExactScorer(batch_size=4), fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / cache),
                out_dir=tmp_path / "out" / f"{learner.name}-{cache}")


def tune(steps: int = 4, curve=None) -> LoraLearner:
    return LoraLearner(steps=steps, batch_size=4, lr=1e-2, curve=curve)


def context(tmp_path) -> AdaptContext:
    return AdaptContext(dataset=ArithDataset(seed=0, n_train=8, n_test=4), train_skill=TRAIN, seed=0,
                        fmt=PromptFormat(), cache=StageCache(tmp_path / "ctx"), model_key={})


# ---- in-context sizes -----------------------------------------------------------------------------------------------
def test_icl_sizes_are_the_first_k_of_the_full_draw_and_the_full_draw_is_todays(tmp_path):
    ctx = context(tmp_path)
    full = InContextLearner(demos=5, curve=[0, 1, 2, 5])
    pool = ctx.dataset.train(TRAIN)
    todays = random.Random(f"0:icl:skill:{TRAIN}").sample(pool, 5)  # the draw adapt() made before curves existed
    answers = [written_answer(ctx.format, ctx.dataset, e) for e in todays]
    assert full.adapt(ctx).prefix == ctx.fmt.demonstrations(todays, answers)
    assert InContextLearner(demos=5).adapt(ctx).prefix == full.adapt(ctx).prefix
    for k in (0, 1, 2, 5):
        assert full.at_size(k).adapt(ctx).prefix == ctx.fmt.demonstrations(todays[:k], answers[:k])
    control = full.control()
    for k in (1, 2):  # the control at size k: the first k of the control's own full draw
        assert full.at_size(k).control().adapt(ctx).prefix.startswith(full.at_size(k - 1).control().adapt(ctx).prefix)
        assert control.adapt(ctx).prefix.startswith(full.at_size(k).control().adapt(ctx).prefix)


@pytest.mark.parametrize("full", [InContextLearner(demos=4, curve=[0, 1, 2, 4]), tune(steps=4, curve=[1, 2, 4])],
                         ids=["icl", "lora"])
def test_keys_of_each_size(full):
    full.bind_model(TinyModel(name="tiny", arch="llama"))
    def key(learner) -> dict:
        return learner.key(TRAIN, 0)

    sizes = full.curve_sizes()
    assert key(full.at_size(sizes[-1])) == key(full)  # the main kernel's cached scores serve the full size
    assert key(full.at_size(sizes[-1]).control()) == key(full.control())
    keys = [json.dumps(key(full.at_size(s)), sort_keys=True) for s in sizes[:-1]]
    assert len(set(keys)) == len(keys) and json.dumps(key(full), sort_keys=True) not in keys
    controls = {json.dumps(key(full.at_size(s).control()), sort_keys=True) for s in sizes if s}
    assert len(controls) == len([s for s in sizes if s])
    if isinstance(full, LoraLearner):  # the adapter after 2 of 4 steps is a 2-step run's: one key
        two = tune(steps=2)
        two.bind_model(TinyModel(name="tiny", arch="llama"))
        assert key(full.at_size(2)) == key(two) and key(full.at_size(2).control()) == key(two.control())
    else:  # a prefix says which draw it is a prefix of
        assert key(full.at_size(2))["prefix_of"] == 4 and key(full.at_size(2))["demos"] == 2


# ---- cells ------------------------------------------------------------------------------------------------------
def _main_rows_at_full_size(result: dict, full: int) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("size", "unit")} for row in result["curve"]
            if row["size"] == full]


def test_an_icl_curve_cell_starts_at_exactly_zero_ends_at_its_main_row_and_reruns_from_the_cache(tmp_path):
    result = run_cell(make_cell(tmp_path, InContextLearner(demos=4, curve=[0, 1, 4])), NullTracker())
    assert [(r["size"], r["test_skill"], r["unit"]) for r in result["curve"]] == \
        [(s, t, "demos") for s in (0, 1, 4) for t in TESTS]
    origin = [r for r in result["curve"] if r["size"] == 0]
    assert all(r["delta"] == 0.0 and r["p_learner"] == r["p_control"] == r["p_base"] for r in origin)
    assert _main_rows_at_full_size(result, 4) == result["tests"]
    assert json.loads((tmp_path / "out" / "icl-skill-cache" / "result.json").read_text())["curve"] == result["curve"]
    again = run_cell(make_cell(tmp_path, InContextLearner(demos=4, curve=[0, 1, 4])), NullTracker())
    assert again["cache"]["misses"] == {} and again["curve"] == result["curve"]
    plain = make_cell(tmp_path, InContextLearner(demos=4))
    assert plain.cell_id() != make_cell(tmp_path, InContextLearner(demos=4, curve=[0, 1, 4])).cell_id()
    assert plain.config_id() == result["cell"]["config_id"]  # curve and plain cells pool into one kernel
    alone = run_cell(plain, NullTracker())  # the main kernel is the curve cell's: nothing to compute
    assert alone["cache"]["misses"] == {} and "curve" not in alone and alone["tests"] == result["tests"]


def _adapter_tensors(cache_dir, learner, ctx) -> dict:
    from safetensors.torch import load_file

    learner.bind_model(TinyModel(name="tiny", arch="llama"))
    kind, parts = learner.stage(ctx)
    folder = StageCache(cache_dir).peek_directory(kind, parts)
    assert folder is not None, f"no adapter cached for {learner.name} at {learner.steps} steps"
    files = sorted(folder.rglob("adapter_model.safetensors"))
    assert len(files) == 1
    return {"weights": load_file(str(files[0])), "loss": json.loads((folder / "loss.json").read_text())}


def test_a_lora_curve_trains_only_the_full_adapters_and_its_snapshots_are_exact_short_runs(tmp_path, monkeypatch):
    trained = []
    real = HFSession.train_adapter

    def counting(self, name, config, texts, settings, **kwargs):
        trained.append((name, settings.steps))
        return real(self, name, config, texts, settings, **kwargs)

    monkeypatch.setattr(HFSession, "train_adapter", counting)
    curve = make_cell(tmp_path, tune(steps=4, curve=[1, 2, 4]), cache="curve")
    result = run_cell(curve, NullTracker())
    assert sorted(trained) == [("tune-base", 4), ("tune-skill", 4)]  # the curve trained nothing more
    assert [(r["size"], r["unit"]) for r in result["curve"]] == [(s, "steps") for s in (1, 2, 4) for _ in TESTS]
    assert _main_rows_at_full_size(result, 4) == result["tests"]
    short = run_cell(make_cell(tmp_path, tune(steps=2), cache="short"), NullTracker())
    assert sorted(trained[2:]) == [("tune-base", 2), ("tune-skill", 2)]
    assert _main_rows_at_full_size(result, 2) == short["tests"]  # the same adapters, so the same numbers
    ctx = curve.context()
    for learner in (tune(steps=2), tune(steps=2).control()):
        snapshot, run = (_adapter_tensors(tmp_path / c, learner, ctx) for c in ("curve", "short"))
        assert snapshot["loss"] == run["loss"] and len(run["loss"]) == 2
        assert snapshot["weights"].keys() == run["weights"].keys() and snapshot["weights"]
        for name, tensor in run["weights"].items():
            assert tensor.dtype == snapshot["weights"][name].dtype
            assert np.array_equal(tensor.numpy(), snapshot["weights"][name].numpy()), name  # bit for bit
    trained.clear()
    again = run_cell(make_cell(tmp_path, tune(steps=4, curve=[1, 2, 4]), cache="curve"), NullTracker())
    assert trained == [] and again["cache"]["misses"] == {} and again["curve"] == result["curve"]


def test_a_curve_asked_for_after_the_full_adapters_were_cached_trains_its_sizes_beside_them(tmp_path):
    """The full adapters are cached by a run without a curve; the curve's sizes then train themselves in the session
    that holds the full adapters under the same learner names, and give the numbers of a fresh curve run."""
    first = make_cell(tmp_path, tune(steps=4), cache="later")
    first.test_skills = TESTS[:1]  # so the curve cell scores its main kernel again: the full adapters get loaded
    run_cell(first, NullTracker())
    trained = []
    real = HFSession.train_adapter

    def counting(self, name, config, texts, settings, **kwargs):
        trained.append((name, settings.steps))
        return real(self, name, config, texts, settings, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HFSession, "train_adapter", counting)
        later = run_cell(make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="later"), NullTracker())
    # the largest missing size trains once per learner and saves the smaller ones on its way
    assert sorted(trained) == [("tune-base", 3), ("tune-skill", 3)]
    fresh = run_cell(make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="fresh"), NullTracker())
    assert later["tests"] == fresh["tests"] and later["curve"] == fresh["curve"]
    assert [r["size"] for r in later["curve"]] == [s for s in (1, 2, 3, 4) for _ in TESTS]
    assert later["curve"][0]["delta"] != later["tests"][0]["delta"]  # size 2 is not the full adapter's number


def test_the_plan_counts_a_curves_tunings_only_where_no_run_leaves_them_on_its_way(tmp_path):
    from ntkeval.plan import plan_grid

    fresh = plan_grid([make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="plan")])
    assert (fresh.tunings, fresh.tunings_cached) == (2, 0)  # the full runs save every size
    first = make_cell(tmp_path, tune(steps=4), cache="plan")
    first.test_skills = TESTS[:1]
    run_cell(first, NullTracker())
    later = plan_grid([make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="plan")])
    assert (later.tunings, later.tunings_cached) == (2, 2)  # size 3 of each learner trains, saving 1 and 2
    run_cell(make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="plan"), NullTracker())
    done = plan_grid([make_cell(tmp_path, tune(steps=4, curve=[1, 2, 3, 4]), cache="plan")])
    assert (done.tunings, done.scorings) == (0, 0)


def test_the_curve_is_mirrored_as_a_table_and_a_mean_per_size():
    class Recording(NullTracker):
        def __init__(self):
            self.summaries, self.tables = {}, {}

        def summary(self, values):
            self.summaries.update(values)

        def table(self, key, columns, rows):
            self.tables[key] = (columns, rows)

    rows = [{"size": s, "unit": "demos", "test_skill": t, "delta": d}
            for s, t, d in [(0, "a", 0.0), (0, "b", 0.0), (2, "a", 0.1), (2, "b", 0.3)]]
    tracker = Recording()
    mirror_curve(tracker, {"curve": rows})
    assert tracker.summaries == {"curve/0/delta_mean": 0.0, "curve/2/delta_mean": pytest.approx(0.2)}
    assert tracker.tables["curve"] == (["size", "unit", "test_skill", "delta"], [list(r.values()) for r in rows])
    mirror_curve(tracker := Recording(), {"tests": []})
    assert tracker.summaries == {} and tracker.tables == {}


# ---- bad curves --------------------------------------------------------------------------------------------------
BAD = [(("learner.curve=[-1]",), "learner.curve=[-1]", "integers >= 0"),
       (("learner.curve=[0,9]",), "learner.curve=[0, 9]", "in [0, 8] (8 from learner.demos=8)"),
       (("learner.curve=[4,2]",), "learner.curve=[4, 2]", "strictly increasing"),
       (("learner.curve=[2,2]",), "learner.curve=[2, 2]", "strictly increasing"),
       (("learner.curve=abc",), "learner.curve='abc'", "a list of integers"),
       (("learner.curve=[one]",), "learner.curve=['one']", "a list of integers"),
       (("learner=tune-skill", "tuning.steps=10", "learner.curve=[5,20]"), "learner.curve=[5, 20]",
        "in [1, 10] (10 from tuning.steps=10)"),
       (("learner=tune-base", "learner.curve=[0,5]"), "learner.curve=[0, 5]", "integers >= 1")]


@pytest.mark.parametrize("args, shows, expects", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_a_bad_curve_is_one_line_before_anything_loads(args, shows, expects, tmp_path, monkeypatch):
    from ntkeval.preflight import check_command_line

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        check_command_line(list(args))
    line = str(raised.value)
    assert shows in line and expects in line and "\n" not in line, line
    assert not list(tmp_path.iterdir())


def test_the_command_refuses_a_bad_curve_with_exit_2_and_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ntkeval", "learner=tune-skill", "learner.curve=[20,10]"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("ntkeval: error: learner.curve=[20, 10] is invalid") and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


# ---- the report ----------------------------------------------------------------------------------------------------
GROUPS = {"axes": ["operation", "format"], "deep": "operation", "surface": "format",
          "skills": {"add/question": {"operation": "add", "format": "question"},
                     "add/word": {"operation": "add", "format": "word"},
                     "mul/question": {"operation": "mul", "format": "question"}}}
# (train, test) -> deltas at sizes 0, 1, 2, 4 (in-context): diagonal means 0, .06, .12, .20; same group 0, .01, .04,
# .035; other group 0, -.02, -.02, -.01
ICL_DELTAS = {("add/question", "add/question"): [0, 0.02, 0.12, 0.20], ("add/word", "add/word"): [0, 0.10, 0.12, 0.20],
              ("add/question", "add/word"): [0, 0.01, 0.03, 0.04], ("add/word", "add/question"): [0, 0.01, 0.05, 0.03],
              ("add/question", "mul/question"): [0, -0.01, -0.02, -0.01],
              ("add/word", "mul/question"): [0, -0.03, -0.02, -0.01]}


def fake_results(learner: str, unit: str, sizes: list[int], deltas: dict) -> list[dict]:
    results = []
    for train in dict.fromkeys(t for t, _ in deltas):
        cell = {"model": "tiny", "learner": learner, "control": "c", "dataset": "arith", "test_dataset": "arith",
                "format": "direct", "train_skill": train, "seed": 0, "scorer": "exact", "estimate": None,
                "config_id": f"id-{learner}"}
        curve = [{"size": s, "unit": unit, "test_skill": test, "n": 16, "delta": d, "ci_low": d - 0.1,
                  "ci_high": d + 0.1, "p_learner": 0.5 + d, "p_control": 0.5}
                 for s_index, s in enumerate(sizes) for (t, test), ds in deltas.items() if t == train
                 for d in [ds[s_index]]]
        results.append({"status": "done", "cell": cell, "tests": [], "curve": curve, "skill_groups": GROUPS,
                        "result_path": f"{learner}/{train}/result.json"})
    return results


def test_the_report_writes_curves_speed_and_a_png_per_kernel(tmp_path):
    steps = {pair: [d / 2 for d in ds] for pair, ds in ICL_DELTAS.items()}  # tuning learns half as much
    results = fake_results("icl-skill", "demos", [0, 1, 2, 4], ICL_DELTAS) + \
        fake_results("tune-skill", "steps", [5, 10, 20, 40], steps) + [{"status": "failed", "cell": {}}]
    lines = write_curves(results, tmp_path)
    curves = _csv(tmp_path / "curves.csv")
    assert len(curves) == 2 * 6 * 4 and {r["learner"] for r in curves} == {"icl-skill", "tune-skill"}
    speed = {(r["learner"], r["group"]): r for r in _csv(tmp_path / "speed.csv")}
    icl = {g: speed["icl-skill", g] for g in ("diagonal", "same group", "other group")}
    assert (icl["diagonal"]["size_to_half"], icl["diagonal"]["size_to_fixed"]) == ("2", "1")  # .10: 2; .05: 1
    assert float(icl["diagonal"]["max_delta"]) == pytest.approx(0.20) and icl["diagonal"]["max_at"] == "4"
    assert (icl["same group"]["max_at"], icl["same group"]["size_to_half"]) == ("2", "2")  # .04 at 2; .02: 2
    assert icl["same group"]["size_to_fixed"] == "not reached"
    assert (icl["other group"]["size_to_half"], icl["other group"]["size_to_fixed"]) == ("no gain", "not reached")
    tuned = speed["tune-skill", "diagonal"]  # means 0, .03, .06, .10: half .05 at 20 steps, .05 at 20 steps
    assert (tuned["unit"], tuned["size_to_half"], tuned["size_to_fixed"]) == ("steps", "20", "20")
    pngs = sorted(tmp_path.glob("curves_*.png"))
    assert [p.name for p in pngs] == ["curves_tiny_icl-skill_arith_exact_id-icl-skill_seed0.png",
                                      "curves_tiny_tune-skill_arith_exact_id-tune-skill_seed0.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert lines[0] == "## Learning curves" and any(pngs[0].name in line for line in lines)
    assert "| diagonal | 2 | +0.200 at 4 | 2 | 1 |" in lines
    assert write_curves([r for r in results if r["status"] == "failed"], tmp_path / "none") == []


def _csv(path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_group_means_and_their_intervals_by_hand():
    from ntkeval.data.base import SkillGroups

    rows = fake_results("icl-skill", "demos", [0, 1, 2, 4], ICL_DELTAS)
    flat = [{"train_skill": r["cell"]["train_skill"], **point} for r in rows for point in r["curve"]]
    curves = {c.group: c for c in group_curves(flat, SkillGroups.from_json(GROUPS))}
    diagonal = curves["diagonal"]
    assert diagonal.sizes == [0, 1, 2, 4] and diagonal.pairs == 2
    assert diagonal.delta == pytest.approx([0, 0.06, 0.12, 0.20])
    assert diagonal.ci_low == pytest.approx([-0.1, -0.04, 0.02, 0.10])
    assert curves["other group"].delta == pytest.approx([0, -0.02, -0.02, -0.01])
    assert [c.group for c in group_curves(flat, None)] == ["diagonal"]  # no groups recorded: the diagonal only
    flat_curve = GroupCurve("diagonal", [1, 2], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], 1)
    assert speed_row({}, "demos", flat_curve)["size_to_half"] == "no gain"


@pytest.mark.parametrize("shape", ["dense", "sparse", "zero"])
def test_the_group_mean_interval_covers_the_mean_delta(shape):
    """Per pair 16 questions of differences in [-1, 1]; the group interval (mean of the pairs' bounded intervals)
    covers the mean of the pairs' true deltas in >= 95% of 300 groups of 3 pairs (the pairs' own intervals cover
    >= 99%, and averaging bounds errs on the wide side)."""
    rng = np.random.default_rng(7)
    truths = {"dense": [0.2, 0.0, -0.1], "sparse": [0.1, 0.1, 0.05], "zero": [0.0, 0.0, 0.0]}[shape]
    target = float(np.mean(_true_means(truths, shape)))

    def draw(truth: float) -> np.ndarray:
        if shape == "sparse":  # a gain of +1 on a fraction `truth` of the questions, 0 elsewhere
            return (rng.random(16) < truth).astype(float)
        return np.clip(truth + rng.normal(0, 0.3, 16), -1, 1) if shape == "dense" else np.zeros(16)

    covered = 0
    for rep in range(300):
        samples = [draw(t) for t in truths]
        intervals = [mean_interval(x, seed=rep, resamples=500) for x in samples]
        low, high = np.mean([d.ci_low for d in intervals]), np.mean([d.ci_high for d in intervals])
        covered += low <= target <= high
    assert covered / 300 >= 0.95


def _true_means(truths: list[float], shape: str) -> list[float]:
    """The means the samples are drawn around (dense: the clipped normal's own mean, by a large draw)."""
    if shape != "dense":
        return truths
    big = np.random.default_rng(0).normal(0, 0.3, 400_000)
    return [float(np.clip(t + big, -1, 1).mean()) for t in truths]
