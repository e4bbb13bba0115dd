"""tune-skill and tune-base in every answer format (issue 12, item 1): the texts they tune on are the train skill's
worked solutions written in the cell's format (tune-base's: the same shape with wrong numbers), the format keys the
adapters, and a tiny-model cell of each format trains both on exactly those texts and writes its kernel row."""

from __future__ import annotations

import re

import pytest

from ntkeval.backends.huggingface.session import HFSession
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache, stable_hash
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat, HybridFormat, PotFormat, WorkFormat
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.tracking.base import NullTracker

SKILL = "ops/question"  # two steps each ("5 * 3 = 15", "15 + 9 = 24"); hybrid writes them as a program
DATA = ArithDataset(seed=0, n_train=4, n_test=2)
FORMATS = {f.name: f for f in (DirectFormat(), CotFormat(), PotFormat(), WorkFormat(), HybridFormat())}


def tune(answers: str) -> LoraLearner:
    return LoraLearner(name="tune-skill" if answers == "correct" else "tune-base", answers=answers, steps=2,
                       batch_size=2, lr=1e-2)


def cell(tmp_path, name: str, learner: LoraLearner) -> Cell:
    form = FORMATS[name]
    scorer = SampledScorer(n=2, max_new_tokens=4) if form.reasoning else ExactScorer(batch_size=4)
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner, dataset=DATA, train_skill=SKILL,
                test_skills=[SKILL], scorer=scorer, fmt=PromptFormat(), format=form, seed=0,
                cache=StageCache(tmp_path / "stages"), out_dir=tmp_path / name)


def shape(text: str) -> str:
    return re.sub(r"-?\d+", "N", text)


@pytest.mark.parametrize("name", list(FORMATS))
def test_tuning_texts_are_written_in_the_cells_format(tmp_path, name):
    form = FORMATS[name]
    context = cell(tmp_path, name, tune("correct")).context()
    right, wrong = tune("correct").training_texts(context), tune("random").training_texts(context)
    examples = DATA.train(SKILL)
    prompts = [context.fmt.prompt(e) for e in examples]
    written = [form.target(e, DATA.solution(e)) if form.reasoning else e.answer for e in examples]
    assert right == [(p, context.fmt.target(w)) for p, w in zip(prompts, written)]
    assert [p for p, _ in wrong] == prompts and all(p.startswith(form.instruction()) for p in prompts)
    for (_, a), (_, b) in zip(right, wrong):
        assert a != b and shape(a) == shape(b), (a, b)  # tune-base: the same form, other numbers
    first = DATA.solution(examples[0])
    steps = [f"{s.expression} = {s.value}" for s in first.steps]
    expected = {"direct": f" {examples[0].answer}\n",
                "cot": " " + "\n".join([f"1. {steps[0]}", f"2. {steps[1]}", f"The answer is {first.answer}."]) + "\n",
                "work": " " + "\n".join(["<work>", *steps, "</work>", f"The answer is {first.answer}."]) + "\n",
                "pot": f" ```python\n{first.program.strip()}\n```\n", "hybrid": f" ```python\n{first.program.strip()}\n```\n"}
    assert right[0][1] == expected[name]
    if name == "cot":  # e.g. " 1. 5 * 3 = 15\n2. 15 + 9 = 24\nThe answer is 24.\n": the steps are carried
        assert shape(right[0][1]) == " N. N * N = N\nN. N + N = N\nThe answer is N.\n"


def test_the_format_keys_every_adapter(tmp_path):
    keys = set()
    for name in FORMATS:
        context = cell(tmp_path, name, tune("correct")).context()
        for answers in ("correct", "random"):
            learner = tune(answers)
            learner.bind_model(TinyModel(name="tiny", arch="llama"))
            keys.add(stable_hash(learner.stage(context)))
    assert len(keys) == 2 * len(FORMATS)
    assert len({cell(tmp_path, name, tune("correct")).cell_id() for name in FORMATS}) == len(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_tune_skill_cell_of_each_format_trains_both_on_those_texts(tmp_path, name, monkeypatch):
    trained = {}
    real = HFSession.train_adapter

    def recording(self, adapter, config, texts, settings, **kwargs):
        trained[adapter] = list(texts)
        return real(self, adapter, config, texts, settings, **kwargs)

    monkeypatch.setattr(HFSession, "train_adapter", recording)
    built = cell(tmp_path, name, tune("correct"))
    result = run_cell(built, NullTracker())
    assert result["status"] == "done" and result["cell"]["format"] == name
    assert result["cell"]["control"] == "tune-base" and result["cache"]["misses"]["adapters"] == 2
    context = built.context()
    assert trained == {"tune-skill": tune("correct").training_texts(context),
                       "tune-base": tune("random").training_texts(context)}
    row = result["tests"][0]
    assert row["test_skill"] == SKILL and row["n"] == 2 and -1 <= row["delta"] <= 1
