"""A cell on tiny models: determinism, stage reuse across cells, LoRA that trains only the adapter."""

import math
import shutil
from pathlib import Path

import pytest
import torch

from ntkeval.backends.huggingface.session import HFSession
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.training import train_lora
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.scorers.ntk import NtkScorer
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.tracking.base import NullTracker

TESTS = ["add/question", "mul/symbol"]


class CountingScorer(ExactScorer):
    """The exact scorer, recording which (learner, skill) sets it really computed."""

    def __init__(self):
        super().__init__(batch_size=4)
        self.calls: list[str] = []

    def score(self, lm, examples, fmt, prefix="", desc="scoring"):
        self.calls.append(desc)
        return super().score(lm, examples, fmt, prefix, desc)


def make_cell(tmp_path: Path, learner, cache_dir: Path, scorer=None, train="add/question", seed=0) -> Cell:
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner,
                dataset=ArithDataset(seed=seed, n_train=8, n_test=4), train_skill=train, test_skills=TESTS,
                scorer=scorer or CountingScorer(), fmt=PromptFormat(), seed=seed, cache=StageCache(cache_dir),
                out_dir=tmp_path / f"{learner.name}-{train}")


def tune(name: str, answers: str) -> LoraLearner:
    return LoraLearner(name=name, answers=answers, steps=3, batch_size=4, lr=1e-2)


def test_cell_writes_a_kernel_row_per_test_skill(tmp_path):
    cell = make_cell(tmp_path, InContextLearner(name="icl-skill", demos=2, source="skill"), tmp_path / "cache")
    result = run_cell(cell, NullTracker())
    assert result["status"] == "done"
    assert result["cell"]["learner"] == "icl-skill" and result["cell"]["control"] == "icl-standard"
    assert [r["test_skill"] for r in result["tests"]] == TESTS
    for row in result["tests"]:
        assert row["n"] == 4
        assert row["delta"] == pytest.approx(row["p_learner"] - row["p_control"], abs=1e-12)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert (cell.out_dir / "result.json").exists()
    questions = (cell.out_dir / "questions.jsonl").read_text().splitlines()
    assert len(questions) == 8


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(tmp_path):
    def rows(cache: str, seed: int):
        return run_cell(make_cell(tmp_path, tune("tune-skill", "correct"), tmp_path / cache, seed=seed),
                        NullTracker())["tests"]

    assert rows("a", 0) == rows("b", 0)
    assert rows("c", 1) != rows("a", 0)


def test_controls_and_base_scores_are_reused_not_recomputed(tmp_path):
    cache = tmp_path / "cache"
    first = make_cell(tmp_path, tune("tune-base", "random"), cache)
    run_cell(first, NullTracker())
    assert sorted(first.scorer.calls) == sorted(
        [f"scoring {s} under {who}" for s in TESTS for who in ("base", "tune-base")])
    assert first.cache.misses["adapters"] == 1

    second = make_cell(tmp_path, tune("tune-skill", "correct"), cache)
    run_cell(second, NullTracker())
    # tune-skill's control is tune-base and its base is the untouched model: both come from the first cell
    assert sorted(second.scorer.calls) == sorted([f"scoring {s} under tune-skill" for s in TESTS])
    assert second.cache.misses["adapters"] == 1  # only tune-skill trained; tune-base's adapter was not needed

    again = make_cell(tmp_path, tune("tune-skill", "correct"), cache)
    result = run_cell(again, NullTracker())
    assert again.scorer.calls == [] and "adapters" not in again.cache.misses
    assert result["tests"] == run_cell(second, NullTracker())["tests"]


def test_icl_standard_prefix_is_shared_by_every_train_skill(tmp_path):
    cache = tmp_path / "cache"
    run_cell(make_cell(tmp_path, InContextLearner(name="icl-skill", demos=2), cache), NullTracker())
    other = make_cell(tmp_path, InContextLearner(name="icl-skill", demos=2), cache, train="mul/symbol")
    run_cell(other, NullTracker())
    assert sorted(other.scorer.calls) == sorted([f"scoring {s} under icl-skill" for s in TESTS])


def test_tune_base_and_tune_skill_see_the_same_questions_with_different_answers(tmp_path):
    context = AdaptContext(dataset=ArithDataset(n_train=8, n_test=4), train_skill="add/question", seed=0,
                           fmt=PromptFormat(), cache=StageCache(tmp_path), model_key={})
    right = tune("tune-skill", "correct").training_texts(context)
    wrong = tune("tune-base", "random").training_texts(context)
    assert [p for p, _ in right] == [p for p, _ in wrong]
    assert all(a != b for (_, a), (_, b) in zip(right, wrong))
    assert all(len(a.strip()) == len(b.strip()) for (_, a), (_, b) in zip(right, wrong))


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_lora_trains_only_adapter_weights_and_lowers_the_loss(arch):
    session = HFSession(TinyModel(name="tiny", arch=arch, initializer_range=0.2))
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    from peft import LoraConfig

    model = session.new_adapter("tune-skill", LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    texts = [(f"Q: What is {a}+{a}?\nA:", f" {2 * a}\n") for a in range(10, 26)]
    losses = train_lora(model, session.tokenizer, texts, steps=30, batch_size=8, lr=2e-2, weight_decay=0.0, seed=0)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    after = model.state_dict()
    changed = {k for k, v in after.items() if "lora_" not in k and not torch.equal(v, before[_base_key(k)])}
    assert changed == set()
    lora_b = [v for k, v in after.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: nonzero means it trained
    with session.using(None) as plain:  # disabling the adapter gives the untouched model back
        ids = session.tokenizer("Q: What is 3+4?\nA:", return_tensors="pt")["input_ids"]
        base_model = TinyModel(name="tiny", arch=arch, initializer_range=0.2).load("cpu")[0]
        assert torch.allclose(plain(input_ids=ids).logits, base_model(input_ids=ids).logits, atol=1e-5)


def _base_key(peft_key: str) -> str:
    """peft renames base weights: base_model.model.<name> and .base_layer. inside wrapped modules."""
    return peft_key.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _fresh_adapter_model(name: str = "tune-skill"):
    from peft import LoraConfig

    session = HFSession(TinyModel(name="tiny", arch="llama", initializer_range=0.2))
    torch.manual_seed(0)
    model = session.new_adapter(name, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    return model, session.tokenizer


@pytest.mark.parametrize("resumed_as", ["tune-skill", "tune-skill#2"])
def test_tuning_killed_mid_way_resumes_from_its_checkpoint_with_identical_results(tmp_path, monkeypatch, resumed_as):
    """Also when the run resumes under another adapter name (a curve size trains under a free name while its full
    adapter is loaded, and the rerun may find that name free): the checkpoint holds the weights by position."""
    import ntkeval.backends.huggingface.training as training

    texts = [(f"Q: What is {a}+{a}?\nA:", f" {2 * a}\n") for a in range(10, 22)]
    args = dict(steps=7, batch_size=4, lr=1e-2, weight_decay=0.0, seed=3)
    model, tok = _fresh_adapter_model()
    want = train_lora(model, tok, texts, **args)
    want_weights = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}

    real_collate, calls = training._collate, []

    def dies_at_step_6(*a, **kw):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt("job killed")  # like SIGTERM/scancel mid-step: no clean shutdown
        return real_collate(*a, **kw)

    monkeypatch.setattr(training, "_collate", dies_at_step_6)
    model, tok = _fresh_adapter_model()
    with pytest.raises(KeyboardInterrupt):
        train_lora(model, tok, texts, **args, checkpoint=tmp_path / "ckpt", checkpoint_every=2)
    assert (tmp_path / "ckpt" / "state.pt").exists()  # steps 1-4 were saved; step 5 was lost with the job
    monkeypatch.setattr(training, "_collate", real_collate)

    model, tok = _fresh_adapter_model(resumed_as)  # a new process: fresh model and optimizer, the checkpoint on disk
    resumed = []
    monkeypatch.setattr(training.log, "info", lambda msg, *a: resumed.append(msg % a))
    got = train_lora(model, tok, texts, **args, checkpoint=tmp_path / "ckpt", checkpoint_every=2)
    assert any("resuming from the checkpoint after step 4" in m for m in resumed), resumed
    assert got == want
    for k, v in model.state_dict().items():
        if "lora_" in k:
            assert torch.equal(v, want_weights[k.replace(resumed_as, "tune-skill")]), k
    assert not (tmp_path / "ckpt").exists()  # a finished tuning leaves no checkpoint behind


def icl_skill() -> InContextLearner:
    return InContextLearner(name="icl-skill", demos=2, source="skill")


def test_ntk_cell_reports_every_estimate_with_its_standard_error_and_reuses_its_stages(tmp_path):
    scorer = NtkScorer(n=4, max_new_tokens=3)
    first = run_cell(make_cell(tmp_path, icl_skill(), tmp_path / "c", scorer=scorer), NullTracker())
    for row in first["tests"]:
        for name in ("importance", "mirror", "balanced"):
            assert math.isfinite(row[f"delta_{name}"]) and row[f"se_{name}"] >= 0
        assert row["delta"] == row["delta_balanced"] and row["estimate"] == "balanced"  # the head estimate
        assert 0 <= row["p_control"] <= 1 and 0 <= row["unparsable_control"] <= 1
    # per test skill, for each of control and learner: its samples (with the log p they were drawn with) and their
    # scoring under the other model
    assert first["cache"]["misses"] == {"samples": 4, "sample-logps": 4}
    again = run_cell(make_cell(tmp_path, icl_skill(), tmp_path / "c", scorer=NtkScorer(n=4, max_new_tokens=3)),
                     NullTracker())
    assert again["tests"] == first["tests"] and again["cache"]["misses"] == {}
    # the accuracy baseline draws the same completions: only the untouched model's are new
    sampled = run_cell(make_cell(tmp_path, icl_skill(), tmp_path / "c", scorer=SampledScorer(n=4, max_new_tokens=3)),
                       NullTracker())
    assert sampled["cache"]["misses"] == {"samples": 2}
    for row in sampled["tests"]:
        assert row["delta"] == pytest.approx(row["p_learner"] - row["p_control"]) and row["se"] >= 0


def test_ntk_refuses_a_learner_without_a_control_before_loading_anything(tmp_path):
    cell = make_cell(tmp_path, InContextLearner(name="icl-standard", demos=2, source="all"), tmp_path / "c",
                     scorer=NtkScorer(n=4))
    with pytest.raises(UserError, match="learner=icl-standard"):
        run_cell(cell, NullTracker())
    assert not (tmp_path / "c").exists()


class CountingTiny(TinyModel):
    loads = 0

    def load(self, device="cpu"):
        CountingTiny.loads += 1
        return super().load(device)


@pytest.mark.parametrize("scorer", [ExactScorer(batch_size=4), NtkScorer(n=2, max_new_tokens=2)],
                         ids=["exact", "ntk"])
def test_a_cell_loads_its_model_once_and_switches_adapters(tmp_path, scorer):
    """Tuning two adapters and scoring three roles on two test skills: one model load, adapters switched on it."""
    CountingTiny.loads = 0
    cell = make_cell(tmp_path, tune("tune-skill", "correct"), tmp_path / "c", scorer=scorer)
    cell.model = CountingTiny(name="tiny", arch="llama")
    run_cell(cell, NullTracker())
    assert CountingTiny.loads == 1


class LossRecorder(NullTracker):
    def __init__(self):
        self.loss: list[float] = []

    def log(self, metrics: dict, step: int | None = None) -> None:
        if "train/loss" in metrics:
            self.loss.append(metrics["train/loss"])


def test_logging_reads_the_loss_curve_back_and_never_trains(tmp_path, monkeypatch):
    """Scores cached, adapter gone: the rerun logs the recorded loss curve and trains nothing (W&B or not)."""
    cache = tmp_path / "cache"
    first = LossRecorder()
    run_cell(make_cell(tmp_path, tune("tune-skill", "correct"), cache), first)
    assert len(first.loss) == 3 and all(math.isfinite(v) for v in first.loss)
    for adapter in (cache / "adapters").iterdir():
        shutil.rmtree(adapter) if adapter.is_dir() else adapter.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("logging a cached cell must not train")

    monkeypatch.setattr("ntkeval.backends.huggingface.session.train_lora", no_training)
    again = LossRecorder()
    cell = make_cell(tmp_path / "rerun", tune("tune-skill", "correct"), cache)
    result = run_cell(cell, again)
    assert again.loss == first.loss
    assert result["cache"]["misses"] == {}  # every score and the loss curve came from the cache


def test_tune_base_and_tune_skill_share_initialisation_and_data_order(tmp_path, monkeypatch):
    """The control differs from the learner only in its answers: same initial adapter, same question order."""
    from ntkeval.backends.huggingface import session as session_module
    from ntkeval.backends.huggingface import training as training_module

    seen: dict[str, dict] = {}
    real, real_collate = session_module.train_lora, training_module._collate
    order: list = []

    def collate(pairs, pad_id, device):
        order.append([tuple(p.context) for p in pairs])
        return real_collate(pairs, pad_id, device)

    def recording(model, tokenizer, texts, *args, desc="", **kwargs):
        initial = {n.replace(".tune-base.", ".X.").replace(".tune-skill.", ".X."): p.detach().clone()
                   for n, p in model.named_parameters() if p.requires_grad}
        order.clear()
        loss = real(model, tokenizer, texts, *args, desc=desc, **kwargs)
        seen[desc.split()[1]] = {"initial": initial, "order": list(order), "targets": [t for _, t in texts]}
        return loss

    monkeypatch.setattr(training_module, "_collate", collate)
    monkeypatch.setattr(session_module, "train_lora", recording)
    run_cell(make_cell(tmp_path, tune("tune-skill", "correct"), tmp_path / "cache"), NullTracker())
    skill, base = seen["tune-skill"], seen["tune-base"]
    assert skill["initial"].keys() == base["initial"].keys() and skill["initial"]
    assert all(torch.equal(skill["initial"][k], base["initial"][k]) for k in skill["initial"])
    assert skill["order"] == base["order"] and len(skill["order"]) == 3  # the same prompts, batch by batch
    assert skill["targets"] != base["targets"]  # ... with correct against random answers


def test_ntk_interval_uses_the_range_its_head_estimate_can_take(tmp_path, monkeypatch):
    """Balanced terms lie in (-2, 2): the bounded interval must be told so, not assume probability differences."""
    import ntkeval.scorers.ntk as ntk_module

    seen = []
    real = ntk_module.paired_delta

    def recording(*args, **kwargs):
        seen.append(kwargs.get("bounds"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ntk_module, "paired_delta", recording)
    run_cell(make_cell(tmp_path, icl_skill(), tmp_path / "c", scorer=NtkScorer(n=4, max_new_tokens=3)), NullTracker())
    assert seen == [(-2.0, 2.0)] * len(TESTS)
    seen.clear()
    run_cell(make_cell(tmp_path, icl_skill(), tmp_path / "c",
                       scorer=NtkScorer(n=4, max_new_tokens=3, estimates=["importance"])), NullTracker())
    assert seen == [None] * len(TESTS)


# ---- answer formats through learners and cells (issue 11) --------------------------------------------------------
def _context(tmp_path, answer_format, fmt=None):
    from ntkeval.formats.direct import DirectFormat

    answer_format = answer_format or DirectFormat()
    return AdaptContext(dataset=ArithDataset(n_train=8, n_test=4), train_skill="ops/question", seed=0,
                        fmt=(fmt or PromptFormat()).with_instruction(answer_format.instruction()),
                        cache=StageCache(tmp_path), model_key={}, format=answer_format)


def test_direct_texts_are_todays_exactly(tmp_path):
    context = _context(tmp_path, None)
    examples = context.dataset.train("ops/question")
    right = tune("tune-skill", "correct").training_texts(context)
    assert right == [(f"Q: {e.question}\nA:", f" {e.answer}\n") for e in examples]
    import random

    rng = random.Random("0:ops/question:random-answers")
    wrong = tune("tune-base", "random").training_texts(context)
    assert wrong == [(f"Q: {e.question}\nA:", f" {context.dataset.random_answer(e, rng)}\n") for e in examples]


def test_icl_demonstrations_of_learner_and_control_are_written_in_the_cells_format(tmp_path):
    from ntkeval.formats.reasoning import CotFormat

    context = _context(tmp_path, CotFormat())
    skill = InContextLearner(name="icl-skill", demos=3).adapt(context).prefix
    standard = InContextLearner(name="icl-standard", demos=3, source="all").adapt(context).prefix
    for prefix in (skill, standard):
        demos = [d for d in prefix.split("\n\n") if d]
        assert len(demos) == 3
        assert all(d.startswith("Q: ") and "\nA: 1. " in d and "\nThe answer is " in d for d in demos), demos
    ds = context.dataset
    first = next(e for e in ds.train("ops/question") if f"Q: {e.question}\n" in skill)
    expected = CotFormat().target(first, ds.solution(first))
    assert f"Q: {first.question}\nA: {expected}\n\n" in skill  # e.g. "1. 12 + 7 = 19\n2. 19 * 3 = 57\nThe answer is 57."


def test_tune_base_of_a_reasoning_format_writes_wrong_solutions_of_the_same_shape(tmp_path):
    from ntkeval.formats.reasoning import WorkFormat

    context = _context(tmp_path, WorkFormat())
    right = tune("tune-skill", "correct").training_texts(context)
    wrong = tune("tune-base", "random").training_texts(context)
    instruction = WorkFormat().instruction() + "\n"
    assert [p for p, _ in right] == [p for p, _ in wrong] and all(p.startswith(instruction + "Q: ") for p, _ in right)
    for (_, a), (_, b) in zip(right, wrong):
        assert a != b and a.count("\n") == b.count("\n") and b.startswith(" <work>\n") and "</work>\nThe answer is" in b


def test_the_format_keys_a_cell_only_when_it_is_not_direct(tmp_path):
    from ntkeval.formats.direct import DirectFormat
    from ntkeval.formats.reasoning import CotFormat
    from ntkeval.scorers.base import Stage

    learner = tune("tune-skill", "correct")
    plain = make_cell(tmp_path, learner, tmp_path / "cache")
    direct = make_cell(tmp_path, learner, tmp_path / "cache")
    direct.format = DirectFormat()
    cot = Cell(**{**{f: getattr(plain, f) for f in ("model", "learner", "dataset", "train_skill", "test_skills",
                                                   "scorer", "seed", "cache", "out_dir")},
                  "fmt": PromptFormat(), "format": CotFormat()})
    assert direct.cell_id() == plain.cell_id() and plain.identity()["format"] == "direct"  # a column, not a key
    assert cot.cell_id() != plain.cell_id() and cot.config_id() != plain.config_id()
    assert cot.identity()["format"] == "cot"
    stage = Stage("scores", plain.roles().learner)
    assert cot.stage_parts(stage, "add/question")["answer_format"] == CotFormat().identity()
    assert "answer_format" not in plain.stage_parts(stage, "add/question")
    assert learner.stage(cot.context())[1]["answer_format"] == CotFormat().identity()
    assert cot.fmt.instruction == CotFormat().instruction()
    from ntkeval.cell import skill_views

    view = skill_views(cot)[0]
    assert view.format is cot.format and view.fmt.prompt(view.examples[0]).startswith(CotFormat().instruction())
