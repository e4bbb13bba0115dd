"""mathglm-tiny: its character tokenizer, its curriculum (short to long, arith's train split only, the cells' own
texts), preparing it once and caching it, and a cell on it; the real configuration's accuracy is a slow test."""

from __future__ import annotations

import re
import time

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict
from transformers import AutoTokenizer

from ntkeval.backends.huggingface import mathglm
from ntkeval.backends.huggingface.prepared import MARKER
from ntkeval.backends.huggingface.mathglm import MathGLMModel, char_tokenizer, greedy_accuracy
from ntkeval.backends.huggingface.mathglm_data import COT, PROMPT, CurriculumData
from ntkeval.build import build_cell
from ntkeval.cell import run_cell
from ntkeval.data.arith import ArithDataset, split_of
from ntkeval.errors import UserError
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat
from ntkeval.preflight import check_command_line
from ntkeval.tracking.base import NullTracker

# A model small enough to train in about a second: what the loader tests need, not what it learns.
TINY = {"operations": ("add",), "formats": ("question",), "hidden_size": 16, "num_layers": 1, "num_heads": 2,
        "steps": 3, "batch_size": 2, "cot_batch_size": 1}
TINY_OVERRIDES = ["model=mathglm-tiny", "model.operations=[add]", "model.formats=[question]", "model.hidden_size=16",
                  "model.num_layers=1", "model.num_heads=2", "model.steps=3", "model.batch_size=2",
                  "model.cot_batch_size=1"]


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


@pytest.fixture(scope="module")
def curriculum() -> CurriculumData:
    return CurriculumData(seed=0, operations=("add", "mul", "ops"), formats=("question", "symbol"))


# ---- tokenizer --------------------------------------------------------------------------------------------------


def test_the_tokenizer_has_one_token_per_character_and_round_trips(tmp_path):
    tokenizer = char_tokenizer()
    text = 'Solve it: "The answer is".\nQ: What is (12+7)*3?\nA: 1. 12 + 7 = 19\n\t~'
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(text) + 1
    assert tokenizer.convert_ids_to_tokens(ids[1:5]) == ["S", "o", "l", "v"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}) == 4
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(text).input_ids == ids and reloaded.decode(ids, skip_special_tokens=True) == text
    assert reloaded("é").input_ids == [tokenizer.bos_token_id, tokenizer.unk_token_id]  # outside ASCII: unknown


# ---- the training texts -----------------------------------------------------------------------------------------


def test_the_curriculum_goes_from_short_to_long(curriculum):
    assert curriculum.schedule(10) == [0, 1, 1, 2, 2, 2, 2, 2, 2, 2]  # shares 0.1, 0.2, 0.7
    first, second, third = curriculum.stages()
    assert {w.name for w in first.writings} == {"direct"}  # one operation only, small numbers
    assert [w.skills for w in third.writings] == [("add/question", "mul/question"), ("add/symbol", "mul/symbol"),
                                                  ("ops/question",), ("ops/symbol",)]  # one surface format each
    assert max(n for q, _ in first.pools["direct", "add/question"] for n in numbers(q)) <= 20
    assert max(n for q, _ in second.pools["direct", "add/question"] for n in numbers(q)) > 20  # then larger ones
    assert max(n for q, _ in second.pools["cot", "ops/symbol"] for n in numbers(q)) <= 20  # and two operations
    assert max(n for q, _ in third.pools["cot", "ops/symbol"] for n in numbers(q)) > 20
    assert {key[1] for key in third.pools} == {"add/question", "add/symbol", "mul/question", "mul/symbol",
                                               "ops/question", "ops/symbol"}


def test_multi_step_skills_first_appear_in_the_second_stage():
    only_long = CurriculumData(seed=0, operations=("ops",), formats=("symbol",))
    assert [name for name, _, _ in only_long._plan()] == [stage.name for stage in only_long.stages()]
    assert len(only_long.stages()) == 2 and only_long.schedule(9) == [0, 0, 1, 1, 1, 1, 1, 1, 1]  # 0.2 : 0.7


def test_the_texts_are_the_cells_texts(compose_config, curriculum):
    """Bare answers exactly as a format=direct cell writes them; steps under the cot instruction line as a format=cot
    cell's prompt leads with it."""
    cfg = compose_config("format=cot")
    assert instantiate(cfg.prompt) == PROMPT and instantiate(cfg.format).instruction() == COT.instruction()
    rng = __import__("random").Random(3)
    stage = curriculum.stages()[2]
    for writing, texts in [(w, n) for w in stage.writings for n in (1, 2, 1)]:
        text, spans = stage.sequence(rng, writing, texts)
        assert len(spans) == texts and text.count("\nA: ") == texts
        if writing.name == "cot":
            assert text.startswith(COT.instruction() + "\nQ: ") and text.count(COT.instruction()) == 1
            assert re.search(r"\nA: 1\. \d+ [-+*/] \d+ = \d+\n2\. \d+ [-+*/] \d+ = \d+\nThe answer is \d+\.\n", text)
        else:
            assert text.startswith("Q: ") and re.fullmatch(r"(Q: [^\n]+\nA: \d+\n\n?)+", text)
        for start, end in spans:
            assert text[start:start + 1] == " " and text[:start].endswith("\nA:")


def test_the_loss_is_taken_on_the_answers_and_the_end(curriculum):
    tokenizer = char_tokenizer()
    text = "Q: What is 2+3?\nA: 5\n\nQ: 1+1=\nA: 2\n"
    assert len(text) == 35 and text[18] == text[32] == " "  # where the answers begin
    batch = mathglm._encode([(text, [(18, 22), (32, 36)])], tokenizer)
    labeled = [int(t) for t in batch["labels"][0] if t != -100]
    assert tokenizer.decode(labeled[:-1]) == " 5\n\n 2\n" and labeled[-1] == tokenizer.eos_token_id


def test_the_shared_beginning_is_encoded_once_with_the_same_loss_and_gradients(curriculum):
    """Rows that begin alike (the cot instruction line and "Q: What is ") are encoded once: same loss, same gradients
    as the plain forward pass, whether the shared part is long or only "Q: "."""
    tokenizer, rng = char_tokenizer(), __import__("random").Random(0)
    config = mathglm.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = mathglm.LlamaForCausalLM(config)
    stage = curriculum.stages()[2]
    cot = next(w for w in stage.writings if w.name == "cot")
    for sequences in ([stage.sequence(rng, cot, 1) for _ in range(4)], [("Q: 1+1=\nA: 2\n", [(9, 12)]),
                                                                        ("Q: What is 2+2?\nA: 4\n", [(18, 21)])]):
        batch = mathglm._encode(sequences, tokenizer)
        gradients = []
        for loss_of in (lambda: model(**batch).loss, lambda: mathglm._shared_prefix_loss(model, batch)):
            model.zero_grad()
            loss = loss_of()
            loss.backward()
            gradients.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
        (plain, plain_grads), (shared, shared_grads) = gradients
        assert shared == pytest.approx(plain, rel=1e-5)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain_grads, shared_grads))


def test_no_arith_test_problem_is_ever_a_training_text(curriculum):
    """Every training problem lies in arith's train bucket (seed-independent), and none of the test questions of
    several seeds appears among the training questions."""
    questions = {q for stage in curriculum.stages() for pool in stage.pools.values() for q, _ in pool}
    assert len(questions) > 5000
    expressions = {q.removeprefix("What is ").removesuffix("?").removesuffix("=") for q in questions}
    assert {split_of(e) for e in expressions} == {"train"}
    for seed in (0, 1, 2):
        dataset = ArithDataset(seed=seed, n_test=100)
        tests = {e.question for op in ("add", "mul", "ops") for fmt in ("question", "symbol")
                 for e in dataset.test(f"{op}/{fmt}")}
        assert len(tests) == 600 and not tests & questions


def test_bad_settings_fail_as_one_line_before_anything_trains():
    with pytest.raises(UserError, match=r"model\.operations.*'pow'.*add, sub, mul, div, ops, cplex"):
        MathGLMModel(operations=("add", "pow"))
    with pytest.raises(UserError, match=r"model\.formats.*'backward'"):
        MathGLMModel(formats=("backward",))
    with pytest.raises(UserError, match="hidden_size=130 must split into num_heads=4"):
        MathGLMModel(hidden_size=130)
    with pytest.raises(UserError, match=r"model\.operations.*'pow'"):
        check_command_line(["model=mathglm-tiny", "model.operations=[add,pow]"])


# ---- preparing, caching, loading ----------------------------------------------------------------------------------


def test_the_model_is_prepared_once_and_a_changed_setting_trains_another(tmp_path, monkeypatch):
    trained = []
    train = MathGLMModel.train

    def counted(self):
        trained.append(self.steps)
        return train(self)

    monkeypatch.setattr(MathGLMModel, "train", counted)
    first = MathGLMModel(cache_dir=str(tmp_path), **TINY).prepare()
    assert (first / MARKER).is_file() and (first / "config.json").is_file() and (first / "tokenizer.json").is_file()
    assert MathGLMModel(cache_dir=str(tmp_path), **TINY).prepare() == first and trained == [3]
    other = MathGLMModel(cache_dir=str(tmp_path), **{**TINY, "steps": 4}).prepare()
    assert other != first and trained == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted([first.name, other.name])

    model, tokenizer = MathGLMModel(cache_dir=str(tmp_path), **TINY).load("cpu")
    assert not model.training and model.dtype == torch.float32 and model.config.hidden_size == 16
    assert tokenizer("12+7=").input_ids == char_tokenizer()("12+7=").input_ids
    assert tokenizer.padding_side == "right"


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    first, _, losses = MathGLMModel(**TINY).train()
    assert torch.equal(torch.get_rng_state(), before)
    second, _, again = MathGLMModel(**TINY).train()
    other, _, _ = MathGLMModel(**{**TINY, "seed": 1}).train()
    assert losses == again
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)


def test_the_identity_holds_every_setting_and_the_texts_formats():
    identity = MathGLMModel(**TINY).identity()
    assert identity["kind"] == "mathglm" and identity["steps"] == 3 and identity["hidden_size"] == 16
    assert identity["data"]["operations"] == ["add"] and identity["data"]["cot"] == COT.identity()
    assert "cache_dir" not in identity


def test_a_cell_runs_on_a_tiny_mathglm(compose_config, tmp_path):
    cfg = compose_config(*TINY_OVERRIDES, "logger=none", "learner=icl-skill", "learner.demos=1",
                         "pair.train=add/question", "pair.test=[add/question,sub/question]", "dataset.n_test=3",
                         "dataset.n_train=2")
    with open_dict(cfg):
        del cfg["hydra"]
    assert check_command_line(TINY_OVERRIDES + ["pair.train=add/question"]) == 1
    result = run_cell(build_cell(cfg, tmp_path / "out"), NullTracker())
    assert [row["test_skill"] for row in result["tests"]] == ["add/question", "sub/question"]
    assert all(-1 <= row["delta"] <= 1 for row in result["tests"])


def test_greedy_accuracy_reads_answers_in_the_format(monkeypatch):
    """The accuracy helper counts a completion as the cell would read it: a bare answer, or steps' final line."""
    dataset = ArithDataset(n_test=2)
    (first, second) = dataset.test("add/question")
    answers = {first.question: f" {first.answer}\nQ:", second.question: " 0\n"}
    monkeypatch.setattr(mathglm, "_greedy", lambda m, t, prompts, stop, n: [
        next(a for q, a in answers.items() if q in p).split(stop[0])[0] for p in prompts])
    assert greedy_accuracy(None, None, dataset, ["add/question"], DirectFormat()) == {"add/question": 0.5}
    answers = {first.question: f" 1. x = 1\nThe answer is {first.answer}.", second.question: f" {second.answer}"}
    assert greedy_accuracy(None, None, dataset, ["add/question"], CotFormat()) == {"add/question": 1.0}


# ---- the real configuration (trains for minutes; run with -m slow) -------------------------------------------------


@pytest.mark.slow
def test_the_real_mathglm_tiny_learns_its_skills_and_not_the_others(compose_config, tmp_path):
    loader = instantiate(compose_config(f"cache_dir={tmp_path}", "model=mathglm-tiny").model)
    start = time.monotonic()
    model, tokenizer = loader.load("cpu")
    print(f"mathglm-tiny prepared in {time.monotonic() - start:.0f} s")
    dataset = ArithDataset()
    direct = greedy_accuracy(model, tokenizer, dataset, ["add/question", "sub/symbol", "mul/question", "div/question",
                                                         "add/word"], DirectFormat())
    stepped = greedy_accuracy(model, tokenizer, dataset, ["ops/symbol"], CotFormat())
    print(direct, stepped)
    # Measured on n_test 20 (mathglm.py's docstring): add/question 1.00, sub/symbol 0.90, mul/question 0.55, the
    # unseen ones 0.00; chance is about 1 in 100.
    assert min(direct["add/question"], direct["sub/symbol"]) >= 0.7
    assert direct["mul/question"] >= 0.3
    assert direct["div/question"] <= 0.1 and direct["add/word"] <= 0.1  # never seen
    assert stepped["ops/symbol"] <= 0.1  # ops is not taught by default (conf/model/mathglm-tiny.yaml)
