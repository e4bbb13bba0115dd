"""tune-rl and its control tune-rl-format: exact rewards on hand-written completions (direct, cot, pot), TRL's GRPO
really training a loadable adapter on the tiny model, resuming a killed run to the very same adapter, the keys, evolved
questions shared by learner and control, and bad input as one line before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from safetensors.torch import load_file

from ntkeval.backends.huggingface.policy_training import PolicyLog, PolicySettings, before_stop, cut_at_stop
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.data.base import Augmented, Example
from ntkeval.errors import UserError
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat, PotFormat
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.rl import RlLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.tracking.base import NullTracker

SUM = Example(id="q/sum", skill="add/question", question="What is 41+55?", answer="96")
OPS = Example(id="q/ops", skill="ops/question", question="What is (5*3)+9?", answer="24")
LORA = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"])


def learner(**settings) -> RlLearner:
    made = RlLearner(**{"steps": 2, "batch_size": 4, "lr": 1e-2, "num_generations": 2, "max_completion_length": 6,
                        "lora": LORA, **settings})
    made.bind_model(TinyModel())
    return made


def context(tmp_path: Path, answer_format=None, dataset=None, session=None, seed: int = 0) -> AdaptContext:
    answer_format = answer_format or DirectFormat()
    return AdaptContext(dataset=dataset or ArithDataset(seed=0, n_train=3, n_test=2), train_skill="add/question",
                        seed=seed, fmt=PromptFormat().with_instruction(answer_format.instruction()),
                        cache=StageCache(tmp_path / "cache"), model_key=TinyModel().key("cpu"), session=session,
                        format=answer_format)


def rewards(made: RlLearner, ctx: AdaptContext, example: Example, texts: list[str]) -> list[dict]:
    return made.reward_function(ctx, [example])([0] * len(texts), texts)


# ---- rewards ----------------------------------------------------------------------------------------------------
def test_direct_rewards_read_the_bare_answer(tmp_path):
    ctx = context(tmp_path)
    got = rewards(learner(), ctx, SUM, [" 96", " 97", " ninety-six"])
    assert got == [{"correct": 1.0, "format": 1.0, "reward": 1.0},
                   {"correct": 0.0, "format": 1.0, "reward": 0.0},
                   {"correct": 0.0, "format": 0.0, "reward": 0.0}]
    control = rewards(learner().control(), ctx, SUM, [" 96", " 97", " ninety-six"])
    assert [r["reward"] for r in control] == [1.0, 1.0, 0.0]  # a wrong answer pays the control as a right one does


COT = [" 1. 5 * 3 = 15\n2. 15 + 9 = 24\nThe answer is 24.",   # right for the right reasons
       " 1. 5 * 3 = 16\n2. 16 + 8 = 24\nThe answer is 24.",   # right answer, wrong steps
       " 1. 5 * 3 = 15\n2. 15 + 9 = 24\nThe answer is 25.",   # right steps, wrong answer stated
       " 1. 5 * 3 = 15\n2. 15 + 9 = 24",                      # cut off before its answer line: no answer read
       " I do not know."]


def test_cot_rewards_multiply_correctness_and_the_exact_process_check(tmp_path):
    ctx = context(tmp_path, CotFormat())
    both = rewards(learner(reward=["correct", "process"]), ctx, OPS, COT)
    assert [(r["correct"], r["process"], r["format"]) for r in both] == [
        (1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)]
    assert [r["reward"] for r in both] == [1.0, 0.0, 0.0, 0.0, 0.0]  # the product: only the first earns
    assert [r["reward"] for r in rewards(learner(), ctx, OPS, COT)] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert [r["reward"] for r in rewards(learner().control(), ctx, OPS, COT)] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_pot_rewards_run_the_program_in_the_sandbox(tmp_path):
    ctx = context(tmp_path, PotFormat())
    texts = [" ```python\nprint(41 + 55)", " ```python\nprint(41 + 54)", " ```python\nprint(undefined_name)",
             " 96"]  # the last writes no program: under pot it gives no answer
    got = rewards(learner(), ctx, SUM, texts)
    assert [(r["correct"], r["format"]) for r in got] == [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0)]
    assert [r["reward"] for r in got] == [1.0, 0.0, 0.0, 0.0]
    assert [r["reward"] for r in rewards(learner().control(), ctx, SUM, texts)] == [1.0, 1.0, 0.0, 0.0]


def test_completions_end_where_the_scorers_samples_end():
    tokenizer = TinyModel().load()[1]
    ids = tokenizer(" 96\nQ: next", add_special_tokens=False)["input_ids"]
    cut = cut_at_stop(tokenizer, ids, ("\n",))
    assert tokenizer.decode(cut).endswith("\n") and "\n" not in tokenizer.decode(cut[:-1])
    assert cut_at_stop(tokenizer, ids, ("\n\n",)) == ids
    assert before_stop(" 1. 2 + 2 = 4\nThe answer is 4.\n\nQ: x", ("\n\n", "\nQ:")) == " 1. 2 + 2 = 4\nThe answer is 4."


def test_generation_stops_at_the_formats_stop_strings(tmp_path):
    from datasets import Dataset

    from ntkeval.backends.huggingface import policy_training

    session = TinyModel().session("cpu")
    model = session.new_adapter("tune-rl", LORA)
    stop = ("a", "e", "3")  # frequent enough in the random tiny model's output to end some completions early
    settings = PolicySettings(steps=1, batch_size=4, lr=1e-2, weight_decay=0.0, num_generations=2,
                              max_completion_length=12, temperature=1.0, beta=0.0, seed=0, stop=stop)
    trainer = policy_training._trainer(model, session.tokenizer, Dataset.from_dict({"prompt": ["Q:"], "question": [0]}),
                                       lambda **_: [0.0], settings, "tune-rl", tmp_path, saving=False)
    torch.manual_seed(0)
    rows, _ = trainer._generate_single_turn([session.tokenizer("Q: What is 1+1?\nA:")["input_ids"]] * 8, None, {}, 1)
    texts = [session.tokenizer.decode(row, skip_special_tokens=True) for row in rows]
    stopped = [t for t in texts if any(s in t for s in stop)]
    assert stopped and all(any(t.endswith(s) for s in stop) and before_stop(t, stop) == t[:-1] for t in stopped)
    assert all(len(row) == 12 for row, t in zip(rows, texts) if t not in stopped)
    assert "generate" not in vars(model)  # the class's generate is back


# ---- GRPO on the tiny model ---------------------------------------------------------------------------------------
def test_grpo_trains_a_loadable_adapter_with_a_loss_and_rewards_per_step(tmp_path):
    cell = Cell(model=TinyModel(), learner=learner(), dataset=ArithDataset(seed=0, n_train=3, n_test=2),
                train_skill="add/question", test_skills=["add/question"], scorer=ExactScorer(batch_size=4),
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "cache"), out_dir=tmp_path / "cell")
    result = run_cell(cell, NullTracker())
    assert result["cell"]["learner"] == "tune-rl" and result["cell"]["control"] == "tune-rl-format"
    for name, reward in (("tune-rl", "correct"), ("tune-rl-format", "format")):
        record = result["adaptation"][name]
        table = record["tables"]["rewards"]
        assert table["columns"] == ["step", "reward", "correct", "format"]
        assert [row[0] for row in table["rows"]] == [1, 2]
        assert all(row[1] == row[table["columns"].index(reward)] for row in table["rows"])  # reward = its component
        assert record["info"]["reward"] == reward and record["info"]["final_reward"] == table["rows"][-1][1]
    context_ = cell.context()
    rl = cell.learner
    kind, parts = rl.stage(context_)
    adapter_dir = context_.cache.peek_directory(kind, parts)
    assert len(json.loads((adapter_dir / "loss.json").read_text())) == 2
    assert rl.recorded_loss(context_) == json.loads((adapter_dir / "loss.json").read_text())
    assert rl.recorded_record(context_).to_json() == result["adaptation"]["tune-rl"]
    assert not (context_.cache.root / "checkpoints").exists() or not any((context_.cache.root / "checkpoints").iterdir())
    session = TinyModel().session("cpu")  # a fresh session loads the saved adapter as scoring will
    session.load_adapter("tune-rl", adapter_dir)
    with session.language_model("tune-rl") as lm:
        assert lm.score([("Q: What is 1+1?\nA:", " 2\n")])[0].logprob < 0


def grpo(tmp_path: Path, reward, steps: int = 4, checkpoint: str | None = "ck", tag: str = "a"):
    """GRPO with a synthetic reward on three prompts (two per step: a new epoch every step), on a fresh tiny model."""
    session = TinyModel().session("cpu")
    settings = PolicySettings(steps=steps, batch_size=4, lr=5e-2, weight_decay=0.0, num_generations=2,
                              max_completion_length=6, temperature=1.0, beta=0.1, seed=0, stop=("\n",),
                              checkpoint_every=2)
    out = tmp_path / tag
    trained = session.train_policy("tune-rl", LORA, [f"Q: What is {i}+{i}?\nA:" for i in range(3)], reward, settings,
                                   checkpoint=tmp_path / checkpoint if checkpoint else None, out_dir=out)
    return trained, load_file(out / "tune-rl" / "adapter_model.safetensors")


def length_reward(indices, texts):
    """1 for an odd number of words: varies within groups, so GRPO has advantages to follow."""
    return [{"reward": float(len(t.split()) % 2), "words": float(len(t.split()))} for t in texts]


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_adapter(tmp_path):
    uninterrupted, weights = grpo(tmp_path, length_reward, checkpoint="ck-whole", tag="whole")
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)  # it did learn something
    calls = []

    def dies_in_step_four(indices, texts):
        calls.append(len(calls))
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return length_reward(indices, texts)

    with pytest.raises(KeyboardInterrupt):
        grpo(tmp_path, dies_in_step_four, tag="killed")
    assert [p.name for p in (tmp_path / "ck").iterdir() if p.name.startswith("checkpoint-")] == ["checkpoint-2"]
    resumed, again = grpo(tmp_path, length_reward, tag="resumed")
    assert not (tmp_path / "ck").exists()  # removed once the adapter is saved
    # the same loss, rewards and adapter weights as the run never killed, across epoch boundaries (one a step)
    assert resumed == uninterrupted and len(resumed.loss) == 4
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)


def test_without_a_checkpoint_folder_it_trains_all_the_same(tmp_path):
    first, weights = grpo(tmp_path, length_reward, steps=2, checkpoint=None, tag="a")
    second, again = grpo(tmp_path, length_reward, steps=2, checkpoint=None, tag="b")
    assert first == second and all(torch.equal(weights[k], again[k]) for k in weights)
    assert set(first.rewards[0]) == {"reward", "words"}


# ---- keys, control, evolve --------------------------------------------------------------------------------------
def test_every_setting_and_the_control_change_the_key():
    base = learner().key("add/question", 0)
    changed = [learner(reward=["correct", "process"]), learner(num_generations=4), learner(max_completion_length=7),
               learner(temperature=0.7), learner(beta=0.01), learner(evolve="depth"), learner(evolve_depth=2),
               learner(steps=3), learner(batch_size=8), learner(lr=1e-3), learner().control()]
    keys = [base] + [m.key("add/question", 0) for m in changed]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == len(keys)
    assert learner().control().name == "tune-rl-format" and learner().control().reward == ["format"]
    assert learner().control().control() is None
    assert learner(checkpoint_every=1).key("add/question", 0) == base  # when work is saved changes no number


class Evolving(ArithDataset):
    """Arith with a stand-in `evolved`: "Harder: " before the question, ten times the answer."""

    def augmentation_problem(self, kind, skills):
        return None if kind == "depth" else f"cannot make {kind}"

    def evolved(self, example, depth, rng):
        harder = Example(f"{example.id}/evolved", example.skill, f"Harder ({depth}, {rng.random():.3f}): "
                         f"{example.question}", str(int(example.answer) * 10))
        return Augmented(harder, None, None, "evolve", example.id)


class FakeSession:
    """Records what a learner asks it to train; returns a loss and rewards of the right length."""

    def __init__(self):
        self.calls = []

    def train_policy(self, name, config, prompts, reward, settings, desc="", checkpoint=None, out_dir=None):
        self.calls.append({"name": name, "prompts": prompts, "settings": settings})
        return PolicyLog([0.0] * settings.steps, [{"reward": 0.5, "correct": 0.5, "format": 1.0}] * settings.steps)


def test_evolve_trains_learner_and_control_on_the_same_harder_questions(tmp_path):
    session, data = FakeSession(), Evolving(seed=0, n_train=3, n_test=2)
    made = learner(evolve="depth", evolve_depth=2)
    made.validate_format(DirectFormat(), data, "add/question")
    for who in (made, made.control()):
        who.adapt(context(tmp_path, dataset=data, session=session))
    ours, control = session.calls
    assert ours["name"] == "tune-rl" and control["name"] == "tune-rl-format"
    assert ours["prompts"] == control["prompts"] and len(ours["prompts"]) == 3
    plain = [e.question for e in data.train("add/question")]
    for prompt, question in zip(ours["prompts"], plain):
        assert prompt.startswith("Q: Harder (2, ") and prompt.endswith(f"): {question}\nA:")
    evolved = made.training_examples(context(tmp_path, dataset=data))
    assert [e.answer for e in evolved] == [str(int(e.answer) * 10) for e in data.train("add/question")]
    ctx = context(tmp_path, dataset=data)
    assert made.reward_function(ctx, evolved)([0], [" " + evolved[0].answer])[0]["reward"] == 1.0  # the new answer
    assert ours["settings"].stop == ("\n",) and ours["settings"].batch_size == 4


def test_evolve_on_arith_trains_on_its_harder_train_side_questions_with_exact_answers(tmp_path):
    """The real data set's evolved questions (arith_augment): larger numbers at depth 1, one more operation at depth
    2, each answer the evaluated expression, none a test problem, and the reward judges against the new answer."""
    from ntkeval.data.arith import evaluate, split_of

    data = ArithDataset(seed=0, n_train=3, n_test=2)
    plain = data.train("add/question")
    for depth, operations in ((1, 1), (2, 2)):
        made = learner(evolve="depth", evolve_depth=depth)
        made.validate_format(DirectFormat(), data, "add/question")
        evolved = made.training_examples(context(tmp_path, dataset=data))
        assert evolved == made.control().training_examples(context(tmp_path, dataset=data))
        for old, new in zip(plain, evolved, strict=True):
            expression = new.question.removeprefix("What is ").removesuffix("?")
            assert new.question != old.question and new.skill == "add/question"
            assert expression.count("+") == operations and int(new.answer) == evaluate(expression)
            assert split_of(expression) == "train"
            if depth == 1:
                assert max(map(int, expression.split("+"))) > max(map(int, old.question[8:-1].split("+")))
        ctx = context(tmp_path, dataset=data)
        assert made.reward_function(ctx, evolved)([0], [" " + evolved[0].answer])[0]["correct"] == 1.0
        assert made.reward_function(ctx, evolved)([0], [" " + plain[0].answer])[0]["correct"] == 0.0


# ---- bad input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, shows", [
    ({"num_generations": 1}, "learner.num_generations=1"), ({"temperature": 0.0}, "learner.temperature=0.0"),
    ({"beta": -0.1}, "learner.beta=-0.1"), ({"reward": ["speed"]}, "learner.reward=['speed']"),
    ({"reward": []}, "learner.reward=[]"), ({"reward": ["format", "correct"]}, "learner.reward=['format', 'correct']"),
    ({"evolve": "width"}, "learner.evolve='width'"), ({"evolve_depth": 3}, "learner.evolve_depth=3"),
    ({"batch_size": 6, "num_generations": 4}, "tuning.batch_size=6"), ({"answers": "random"}, "learner.answers"),
    ({"max_completion_length": 0}, "learner.max_completion_length=0"),
    ({"curve": [1, 2]}, "learner.curve=[1, 2] is not available")])
def test_out_of_range_settings_fail_in_one_line(settings, shows):
    with pytest.raises(UserError) as error:
        learner(**settings)
    message = str(error.value)
    assert shows in message and "valid" in message and "\n" not in message


class Plain(ArithDataset):
    """A data set that neither evolves questions nor checks steps."""
    name = "plain"
    augmentation_problem = None
    check_steps = None


@pytest.mark.parametrize("made, answer_format, data, shows", [
    (dict(reward=["correct", "process"]), DirectFormat(), ArithDataset(), "format=direct writes none"),
    (dict(reward=["correct", "process"]), PotFormat(), ArithDataset(), "format=pot writes none"),
    (dict(reward=["correct", "process"]), CotFormat(), Plain(), "checks no steps"),
    (dict(evolve="depth"), DirectFormat(), Plain(), "cannot evolve questions"),
    (dict(evolve="depth"), DirectFormat(), type("Refusing", (Evolving,), {
        "augmentation_problem": lambda self, kind, skills: f"{kind} is not made for {skills[0]}"})(),
     "depth is not made for add/question")])
def test_what_the_format_or_data_set_cannot_serve_fails_in_one_line(made, answer_format, data, shows):
    with pytest.raises(UserError) as error:
        learner(**made).validate_format(answer_format, data, "add/question")
    assert shows in str(error.value) and "valid" in str(error.value) and "\n" not in str(error.value)
    learner().validate_format(answer_format, data, "add/question")  # the plain learner needs neither


def test_the_command_line_stops_a_bad_setting_before_loading(compose_config, tmp_path):
    from ntkeval.preflight import check_command_line

    with pytest.raises(UserError) as error:
        check_command_line(["learner=tune-rl", "learner.num_generations=1", "model=tiny", "logger=none",
                            f"hydra.run.dir={tmp_path}/run"])
    assert "learner.num_generations=1" in str(error.value)
    with pytest.raises(UserError) as error:
        check_command_line(["learner=tune-rl", "learner.reward=[correct,process]", "model=tiny", "logger=none",
                            f"hydra.run.dir={tmp_path}/run"])
    assert "format=direct writes none" in str(error.value)


# ---- a real model -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_rl_on_smollm2_runs_a_few_steps(tmp_path, request):
    from ntkeval.backends.huggingface.embedded import EmbeddedModel

    model = EmbeddedModel(cache_dir=str(request.config.cache.mkdir("ntkeval-models")))
    made = RlLearner(steps=2, batch_size=8, lr=1e-3, num_generations=4, max_completion_length=16)
    cell = Cell(model=model, learner=made, dataset=ArithDataset(seed=0, n_train=8, n_test=4),
                train_skill="add/question", test_skills=["add/question"], scorer=ExactScorer(batch_size=8),
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "cache"), out_dir=tmp_path / "cell")
    result = run_cell(cell, NullTracker())
    for name in ("tune-rl", "tune-rl-format"):
        rows = result["adaptation"][name]["tables"]["rewards"]["rows"]
        assert len(rows) == 2 and all(0.0 <= row[1] <= 1.0 for row in rows)
    control = result["adaptation"]["tune-rl-format"]["tables"]["rewards"]
    assert all(row[1] == row[control["columns"].index("format")] for row in control["rows"])  # blind to correctness
    assert 0.0 <= result["tests"][0]["p_learner"] <= 1.0
