"""scorer=entk, the predicted kernel: gradients checked against finite differences and the closed form of a LoRA
gradient, the predicted delta against lr p <g_q, gbar> computed apart, one real SGD step of the tuning loss against
the linearisation, the CountSketch's unbiasedness and bounded memory, the session left as it was, the caches, the
Spearman and Mantel statistics (exact on hand cases, calibrated under nulls), bad settings and the report."""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from ntkeval.backends.base import GradientSpec, TrainingSettings
from ntkeval.backends.huggingface import gradients
from ntkeval.backends.huggingface.gradients import GRADIENT_ADAPTER, CountSketch, answer_gradients
from ntkeval.backends.huggingface.session import HFSession
from ntkeval.backends.huggingface.teacher_forcing import answer_logprobs
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import encode_pair, pad_id
from ntkeval.backends.huggingface.training import _collate
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.learners.lora import LoraLearner
from ntkeval.preflight import check_command_line
from ntkeval.prompts import PromptFormat
from ntkeval.report.predicted import write_predicted
from ntkeval.scorers.entk import EntkScorer
from ntkeval.stats.mantel import mantel, ranks, spearman
from ntkeval.tracking.base import NullTracker

TESTS = ["add/question", "mul/symbol"]
TEXTS = [("Q: 12+7\nA:", " 19\n"), ("Q: 3*4\nA:", " 12\n"), ("Q: 40-9\nA:", " 31\n")]


def lora_config(**extra) -> LoraConfig:
    return LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                      task_type="CAUSAL_LM", **extra)


def tiny_double(init: float = 0.2):
    """A tiny Llama in float64 with weights large enough to make gradients far from zero."""
    model, tokenizer = TinyModel(initializer_range=init).load("cpu")
    return model.double().eval(), tokenizer


def with_adapter(model, seed: int = 0, config=None):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        peft = get_peft_model(model, config or lora_config(), adapter_name="adapter").double()  # peft's are fp32
    return peft, {n: p for n, p in peft.named_parameters() if p.requires_grad}


def logp_of(model, tokenizer, texts) -> np.ndarray:
    return np.array(answer_logprobs(model, tokenizer, [p for p, _ in texts], [t for _, t in texts]))


# ---- gradients ----------------------------------------------------------------------------------------------------
def float64_norm(self, hidden):
    """Llama's RMSNorm without its float32 round trip, so a finite difference can resolve 1e-6 steps."""
    return self.weight * hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)


@pytest.mark.parametrize("which", ["lora", "full"])
def test_the_gradient_is_the_derivative_of_log_p(which, monkeypatch):
    """<g, v> equals a central finite difference of log p along a random direction v (float64 throughout)."""
    from transformers.models.llama import modeling_llama

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", float64_norm)
    model, tokenizer = tiny_double()
    model, params = with_adapter(model) if which == "lora" else (model, dict(model.named_parameters()))
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in params.values()))
    g, logps = answer_gradients(model, tokenizer, TEXTS[:1], params, desc=None)
    assert logps[0] == pytest.approx(logp_of(model, tokenizer, TEXTS[:1])[0], abs=1e-5)  # scorer: float32
    rng = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, generator=rng, dtype=p.dtype) for p in params.values()]
    eps = 1e-6

    def shifted(sign: float) -> float:
        with torch.no_grad():
            for p, v in zip(params.values(), direction):
                p.add_(sign * eps * v)
            value = answer_gradients(model, tokenizer, TEXTS[:1], params, desc=None)[1][0]  # float64 log p
            for p, v in zip(params.values(), direction):
                p.sub_(sign * eps * v)
        return value

    numeric = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    analytic = float(g[0] @ torch.cat([v.reshape(-1) for v in direction]).numpy())
    assert abs(numeric) > 1e-3
    assert analytic == pytest.approx(numeric, rel=1e-6)


def test_the_lora_gradient_is_the_weight_gradient_through_a():
    """At B = 0, d log p / dB = scale * (d log p / dW) A^T for each adapted weight W, and d log p / dA = 0: the
    LoRA gradient built by hand from the full gradient."""
    base, tokenizer = tiny_double()
    full, _ = answer_gradients(base, tokenizer, TEXTS[:1], dict(base.named_parameters()), desc=None)
    offsets, at = {}, 0
    for name, p in base.named_parameters():
        offsets[name] = (at, p.shape)
        at += p.numel()
    model, params = with_adapter(base)
    lora, _ = answer_gradients(model, tokenizer, TEXTS[:1], params, desc=None)
    at, checked = 0, 0
    for name, p in params.items():
        got = torch.from_numpy(lora[0, at:at + p.numel()]).reshape(p.shape)
        at += p.numel()
        if "lora_A" in name:
            assert torch.count_nonzero(got) == 0
            continue
        weight = name.removeprefix("base_model.model.").replace("lora_B.adapter.weight", "weight")
        start, shape = offsets[weight]
        grad_w = torch.from_numpy(full[0, start:start + math.prod(shape)]).reshape(shape)
        a = dict(model.named_parameters())[name.replace("lora_B", "lora_A")].detach()
        expected = (8 / 4) * grad_w @ a.T  # scale = lora_alpha / r
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12) and torch.count_nonzero(got) > 0
        checked += 1
    assert checked == 4  # q_proj and v_proj of 2 layers


def test_the_train_mean_is_the_per_token_mean_and_does_not_depend_on_batch_size():
    model, tokenizer = tiny_double()
    model, params = with_adapter(model)
    per_text, logps = answer_gradients(model, tokenizer, TEXTS, params, desc=None)
    tokens = [len(encode_pair(tokenizer, p, t).answer) for p, t in TEXTS]
    expected = per_text.sum(axis=0) / sum(tokens)
    for batch in (1, 2, 8):
        mean, mean_logps = answer_gradients(model, tokenizer, TEXTS, params, mean=True, batch_size=batch, desc=None)
        assert np.allclose(mean[0], expected, rtol=1e-9, atol=1e-14)
        assert np.allclose(mean_logps, logps, atol=1e-10)


def test_one_sgd_step_of_the_tuning_loss_moves_log_p_as_predicted():
    """The linearisation, sign and scale: one real SGD step of size lr on the tuning loss (training.py's answer-token
    cross-entropy over the train texts as one batch) changes log p_q by lr <g_q, gbar> up to O(lr^2)."""
    model, tokenizer = tiny_double()
    model, params = with_adapter(model)
    train, tests = TEXTS, [("Q: 5+5\nA:", " 10\n"), ("Q: 9*9\nA:", " 81\n")]
    gbar = answer_gradients(model, tokenizer, train, params, mean=True, desc=None)[0][0]
    g_q, before = answer_gradients(model, tokenizer, tests, params, desc=None)
    dots = g_q @ gbar
    lr = 1e-3 / np.abs(dots).max()  # a step that moves log p by ~1e-3: first order dominates
    ids, mask, labels = _collate([encode_pair(tokenizer, p, t) for p, t in train], pad_id(tokenizer), "cpu")
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)
    optimizer = torch.optim.SGD(list(params.values()), lr=float(lr))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    moved = logp_of(model, tokenizer, tests) - np.array(before)
    assert np.all(np.sign(moved) == np.sign(dots))
    assert np.allclose(moved, lr * dots, rtol=0.02)


# ---- the sketch ---------------------------------------------------------------------------------------------------
def test_the_count_sketch_is_unbiased_for_inner_products_and_norms():
    rng = np.random.default_rng(0)
    x = {"w": torch.from_numpy(rng.normal(size=(30, 20))), "b": torch.from_numpy(rng.normal(size=50))}
    y = {k: v + torch.from_numpy(rng.normal(size=v.shape)) for k, v in x.items()}
    exact = sum(float((x[k] * y[k]).sum()) for k in x)
    norm = sum(float((x[k] ** 2).sum()) for k in x)
    dots, norms = [], []
    for seed in range(800):
        sketch = CountSketch(16, seed)
        sx, sy = sketch(x), sketch(y)
        dots.append(float(sx @ sy))
        norms.append(float(sx @ sx))
    for values, target in ((dots, exact), (norms, norm)):
        se = np.std(values, ddof=1) / math.sqrt(len(values))
        assert abs(np.mean(values) - target) < 4 * se, (np.mean(values), target, se)
    assert np.var(dots) > 0  # a 16-bucket sketch is not the identity
    again = CountSketch(16, 3)
    assert torch.equal(again(x), CountSketch(16, 3)(x))  # seeded: train and test vectors share one map


def test_the_sketch_never_holds_more_than_a_chunk(monkeypatch):
    """A 20M-entry parameter into 64 buckets: every hash draw is at most one chunk, the result is the sketch of
    the whole tensor (linear across chunks), and it takes seconds, not a 64 x 20M matrix."""
    sizes = []
    draws = CountSketch._draws

    def spy(self, name, start, size):
        sizes.append(size)
        return draws(self, name, start, size)

    monkeypatch.setattr(CountSketch, "_draws", spy)
    big = torch.ones(20_000_000, dtype=torch.float32)
    start = time.monotonic()
    out = CountSketch(64, 0)({"w": big})
    assert time.monotonic() - start < 30
    assert max(sizes) <= gradients.SKETCH_CHUNK and len(sizes) == math.ceil(big.numel() / gradients.SKETCH_CHUNK)
    assert out.shape == (64,) and abs(float(out.sum())) <= big.numel()  # signed sums of ones


# ---- the session --------------------------------------------------------------------------------------------------
def base_and_tuned_scores(session: HFSession) -> list[float]:
    out = []
    for adapter in [None, *sorted(session._adapters)]:
        with session.language_model(adapter) as lm:
            out += [s.logprob for s in lm.score(TEXTS, desc=None)]
    return out


@pytest.mark.parametrize("adapters_before", [0, 1])
def test_entk_gradients_leave_every_role_as_it_was(adapters_before):
    """Scores of the untouched model (and of a learner's adapter) are the same before and after; the gradient
    adapter is gone, whether it was the session's first adapter (peft unwrapped) or not."""
    session = TinyModel().session("cpu")
    if adapters_before:
        session.train_adapter("tune-skill", lora_config(), TEXTS, TrainingSettings(2, 2, 1e-2, 0.0, 0))
    before = base_and_tuned_scores(session)
    for spec in (GradientSpec("lora", lora_config(), 0), GradientSpec("full", None, 0, 32)):
        session.answer_gradients(TEXTS, spec, desc=None)
        assert GRADIENT_ADAPTER not in session._adapters
        assert base_and_tuned_scores(session) == before
    assert (session._peft is None) == (adapters_before == 0)


def test_the_gradient_adapter_starts_where_tuning_starts():
    """Its initialisation is train_adapter's for the seed: tuning with lr = 0 keeps the adapter at theta0."""
    session = TinyModel().session("cpu")
    spec = GradientSpec("lora", lora_config(), 7)
    with gradients.gradient_parameters(session, spec) as (_, params):
        start = {n.replace(f".{GRADIENT_ADAPTER}.", "."): p.detach().clone() for n, p in params.items()}
    session.train_adapter("t", lora_config(), TEXTS, TrainingSettings(1, 2, 0.0, 0.0, 7))
    tuned = {n.replace(".t.", "."): p.detach() for n, p in session._peft.named_parameters() if ".t." in n}
    assert start.keys() == tuned.keys() and all(torch.equal(start[n], tuned[n]) for n in start)


# ---- cells --------------------------------------------------------------------------------------------------------
def entk_cell(tmp_path: Path, cache: Path, train: str = "add/question", scorer: EntkScorer | None = None) -> Cell:
    learner = LoraLearner(name="tune-skill", answers="correct", steps=3, batch_size=4, lr=0.05)
    return Cell(model=TinyModel(name="tiny", initializer_range=0.2), learner=learner,
                dataset=ArithDataset(seed=0, n_train=6, n_test=3), train_skill=train, test_skills=TESTS,
                scorer=scorer or EntkScorer(batch_size=4), fmt=PromptFormat(), seed=0, cache=StageCache(cache),
                out_dir=tmp_path / f"entk-{train.replace('/', '_')}")


def test_the_predicted_delta_is_lr_p_dot_computed_apart(tmp_path):
    cell = entk_cell(tmp_path, tmp_path / "cache")
    result = run_cell(cell, NullTracker())
    rows = [json.loads(line) for line in (cell.out_dir / "questions.jsonl").read_text().splitlines()]
    session = cell.model.session("cpu")
    context = cell.context(session)
    spec = GradientSpec("lora", cell.learner.lora_config(), cell.seed)
    means = [session.answer_gradients(learner.training_texts(context), spec, mean=True, desc=None)[0][0]
             for learner in (cell.learner, cell.learner.control())]
    for test in result["tests"]:
        examples = cell.dataset.test(test["test_skill"])
        g, _ = session.answer_gradients([(cell.fmt.prompt(e), cell.fmt.target(e.answer)) for e in examples],
                                        spec, desc=None)
        with session.language_model(None) as lm:  # the exact scorer's p of the untouched model
            p = np.exp([s.logprob for s in lm.score([(cell.fmt.prompt(e), cell.fmt.target(e.answer))
                                                     for e in examples], desc=None)])
        expected = p * 0.05 * (g @ means[0] - g @ means[1])
        got = [r for r in rows if r["test_skill"] == test["test_skill"]]
        # to float32 rounding: the scorer's log p comes from batched passes, entk's from the gradient pass
        assert np.allclose([r["delta"] for r in got], expected, rtol=1e-5, atol=0)
        assert np.allclose([r["p_base"] for r in got], p, rtol=1e-5)
        assert test["delta"] == pytest.approx(expected.mean(), rel=1e-5)
        logp = 0.05 * (g @ means[0] - g @ means[1])  # the same step's change of log p, before the factor p
        assert np.allclose([r["delta_logp"] for r in got], logp, rtol=1e-5, atol=0)
        assert test["delta_logp"] == pytest.approx(logp.mean(), rel=1e-5)
        assert test["ci_low"] <= test["delta"] <= test["ci_high"] and test["n"] == 3
        assert test["delta"] == pytest.approx(test["p_learner"] - test["p_control"], rel=1e-6)
        assert abs(test["delta"]) > 0


def test_a_cached_rerun_computes_nothing_and_test_gradients_are_shared_across_train_skills(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = run_cell(entk_cell(tmp_path, cache), NullTracker())
    assert first["cache"]["misses"] == {"entk-test": 2, "entk-train": 2, "entk-dots": 4}
    other = entk_cell(tmp_path, cache, train="mul/symbol")
    run_cell(other, NullTracker())
    assert other.cache.misses == {"entk-train": 2, "entk-dots": 4}  # each test skill's gradients computed once

    def no_model(self):
        raise AssertionError("a cached entk cell loaded the model")

    monkeypatch.setattr(HFSession, "_ensure_loaded", no_model)
    again = entk_cell(tmp_path, cache)
    assert run_cell(again, NullTracker())["tests"] == first["tests"]
    assert again.cache.misses == {}


def test_projected_gradients_are_keyed_apart_and_close_to_exact(tmp_path):
    cache = tmp_path / "cache"
    exact = run_cell(entk_cell(tmp_path, cache), NullTracker())["tests"]
    sketched = entk_cell(tmp_path, cache, scorer=EntkScorer(projection=4096, batch_size=4))
    assert sketched.cell_id() != entk_cell(tmp_path, cache).cell_id()
    rows = run_cell(sketched, NullTracker())["tests"]
    assert sketched.cache.misses["entk-test"] == 2
    for a, b in zip(exact, rows):  # 4096 buckets for ~2k LoRA entries: close, not equal
        assert b["delta"] == pytest.approx(a["delta"], rel=0.5, abs=1e-12) and b["delta"] != a["delta"]


# ---- statistics ---------------------------------------------------------------------------------------------------
def test_spearman_and_mantel_on_hand_cases():
    assert list(ranks([10, 20, 20, 30])) == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 2], [2, 1]))
    a = np.arange(9, dtype=float).reshape(3, 3) ** 1.5  # distinct entries: only the identity keeps them in place
    found = mantel(a, a)
    assert found.rho == pytest.approx(1.0) and found.p_value == pytest.approx(1 / 6) and found.exhaustive
    assert mantel(a, -a).p_value == pytest.approx(1.0)  # one-sided: every relabelling reaches rho = -1 or more
    big = np.random.default_rng(0).normal(size=(9, 9))
    random = mantel(big, big, permutations=500, seed=1)
    assert not random.exhaustive and random.p_value <= 2 / 501 and random.relabellings == 501


@pytest.mark.parametrize("skills,effects", [(5, 0.0), (5, 2.0), (9, 2.0)])
def test_the_mantel_test_rejects_at_its_level_under_the_null(skills, effects):
    """Independent kernels, each with its own train- and test-skill effects (entries not exchangeable): the test
    rejects at alpha = 0.05 in 2-8% of 300 pairs (all 120 relabellings at 5 skills, 2000 random ones at 9)."""
    rng = np.random.default_rng(skills * 10 + int(effects))

    def kernel():
        rows, cols = rng.normal(size=(2, skills)) * effects
        return rows[:, None] + cols[None, :] + rng.normal(size=(skills, skills))

    rejections = [mantel(kernel(), kernel(), seed=i).p_value <= 0.05 for i in range(300)]
    assert 0.02 <= np.mean(rejections) <= 0.08


# ---- settings -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,shows", [
    (["learner=tune-skill", "scorer.params=full"], "scorer.projection=null is invalid with scorer.params=full"),
    (["learner=tune-skill", "scorer.projection=0"], "scorer.projection=0 is invalid"),
    (["learner=tune-skill", "scorer.params=sketch"], "scorer.params='sketch' is invalid"),
    (["learner=icl-skill"], "learner=icl-skill is no such learner"),  # the default learner: caught by the schema
    (["learner=tune-rl"], "learner=tune-rl is no such learner"),
    (["learner=tune-base"], "learner=tune-base has no control for scorer=entk"),
    (["learner=tune-skill", "format=cot"], "scorer=entk cannot predict format=cot"),
    (["learner=tune-skill", "learner.curve=[5,10]"], "learner.curve=[5, 10] is invalid with scorer=entk"),
])
def test_bad_entk_settings_are_one_line_before_any_model_loads(args, shows, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(HFSession, "_ensure_loaded", lambda self: pytest.fail("a model loaded"))
    with pytest.raises(UserError) as raised:
        check_command_line(["scorer=entk", "model=tiny", *args])
    assert shows in str(raised.value) and "\n" not in str(raised.value)


def test_the_command_refuses_full_gradients_without_a_projection(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ntkeval", "scorer=entk", "scorer.params=full", "model=tiny",
                           "learner=tune-skill"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "scorer.projection=null" in done.stderr and "Traceback" not in done.stderr


def test_the_dry_run_counts_entk_stages_and_no_tuning(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        check_command_line(["scorer=entk", "model=tiny", "learner=tune-skill", "dry_run=true", "logger=none",
                            f"cache_dir={tmp_path / 'cache'}", "pair.test=[add/question,mul/symbol]"])
    out = capsys.readouterr().out
    assert "tunings: 0 to run" in out and "scorings (role x test skill): 4 to run" in out


# ---- the report ---------------------------------------------------------------------------------------------------
def fake_result(scorer: str, config: str, kernel: dict, curve: dict | None = None, logp: dict | None = None) -> list[dict]:
    results = []
    for train in sorted({t for t, _ in kernel}):
        cell = {"model": "tiny", "learner": "tune-skill", "dataset": "arith", "test_dataset": "arith",
                "format": "direct", "seed": 0, "scorer": scorer, "config_id": config, "train_skill": train}
        tests = [{"test_skill": s, "delta": d, **({"delta_logp": logp[(t, s)]} if logp else {})}
                 for (t, s), d in kernel.items() if t == train]
        rows = [{"size": size, "unit": "steps", "test_skill": s, "delta": d}
                for size, entries in (curve or {}).items() for (t, s), d in entries.items() if t == train]
        results.append({"status": "done", "cell": cell, "tests": tests, **({"curve": rows} if rows else {})})
    return results


def test_the_report_pairs_predicted_with_measured_kernels(tmp_path):
    skills = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    measured = {(t, s): float(rng.normal()) for t in skills for s in skills}
    predicted = {k: 2 * v + 0.01 * (i % 3) for i, (k, v) in enumerate(measured.items())}  # the same order
    at_two = {k: -v for k, v in measured.items()}
    results = fake_result("entk", "p1", predicted) + fake_result("exact", "m1", measured, {2: at_two})
    results += fake_result("exact", "m2", {("a", "a"): 1.0})  # another configuration: a comparison of its own
    lines = write_predicted(results, tmp_path)
    text = "\n".join(lines)
    assert "Spearman rho = 1.00, Mantel p = 0.0417 (4 skills, 16 entries)" in text  # 1 of 4! relabellings
    assert "at steps 2: Spearman rho = -1.00, Mantel p = 1 (4 skills, 16 entries)" in text
    assert "configs p1/m2): Spearman rho = nan (1 entries; no Mantel test" in text
    with open(tmp_path / "predicted.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 + 16 + 1
    first = next(r for r in rows if r["measured_config"] == "m1" and r["size"] == "" and r["train_skill"] == "b"
                 and r["test_skill"] == "c")
    assert float(first["measured"]) == measured[("b", "c")] and float(first["predicted"]) == predicted[("b", "c")]
    assert write_predicted(fake_result("exact", "m1", measured), tmp_path / "none") == []


def test_the_predicted_change_of_log_p_is_reported_beside_that_of_p(tmp_path):
    skills = ["a", "b", "c"]
    measured = {(t, s): float(3 * i + j) for i, t in enumerate(skills) for j, s in enumerate(skills)}
    in_p = {k: -v for k, v in measured.items()}   # the factor p reversed the order
    in_logp = {k: v / 10 for k, v in measured.items()}  # the step itself ranks as the measurement
    lines = write_predicted(fake_result("entk", "p1", in_p, logp=in_logp) + fake_result("exact", "m1", measured),
                            tmp_path)
    assert "Spearman rho = -1.00, Mantel p = 1; change of log p: rho = 1.00, Mantel p = 0.167" in "\n".join(lines)
    with open(tmp_path / "predicted.csv") as f:
        rows = list(csv.DictReader(f))
    assert {float(r["predicted_logp"]) for r in rows} == set(in_logp.values())


# ---- smollm2 ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["scorer.params=full", "scorer.projection=4096"]], ids=["lora", "full-4096"])
def test_one_entk_cell_on_smollm2(tmp_path, extra):
    """Prints the wall time and the peak memory of one cell (16 test questions x 2 skills, 32 train texts)."""
    models = os.path.expanduser("~/.cache/ntkeval/models")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ntkeval", "scorer=entk", "learner=tune-skill",
                           "pair.train=add/question", "pair.test=[add/question,mul/question]", "dataset.n_test=16",
                           "dataset.n_train=32", "logger=none", f"model.cache_dir={models}",
                           f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    print(f"entk {' '.join(extra) or 'params=lora exact'}: {seconds:.0f} s, peak {peak:.0f} MB; "
          + "; ".join(f"{t['test_skill']}: delta {t['delta']:.3g}" for t in result["tests"]))
    assert all(math.isfinite(t["delta"]) for t in result["tests"])
