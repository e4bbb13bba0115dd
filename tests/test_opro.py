"""OPRO as a learner (ntkeval.learners.opro): the meta prompt's exact text, the reading of proposals, the
optimisation loop on a scripted fake model (exact trajectory, kept flags, best instruction), scores equal to a direct
p(correct) on the tiny model, a tiny-model cell end to end with its record and stage cache, the optimizer_model
override path, and bad input through the preflight. A real optimisation on smollm2 is @slow."""

from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager

import pytest
from omegaconf import open_dict

from ntkeval.backends.base import AnswerScore, Completion
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.build import build_cell, make
from ntkeval.cache import StageCache, stable_hash
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.formats.reasoning import CotFormat
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.opro import OproLearner, StartInstruction
from ntkeval.learners.opro_meta import (
    Scored,
    best,
    meta_prompt,
    read_proposal,
    read_proposals,
)
from ntkeval.preflight import check_command_line
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.tracking.base import NullTracker

START = "Let's solve the problem."


# ---- the meta prompt and the proposals ---------------------------------------------------------------------------
def test_the_meta_prompt_lists_instructions_ascending_then_exemplars_then_the_call():
    kept = [Scored(0, START, 0.25), Scored(1, "Add the numbers.", 0.5), Scored(1, "Think first.", 0.125)]
    exemplars = [("<INS>\nQ: What is 1+2?\nA:", "3"), ("<INS>\nQ: What is 4+4?\nA:", "8")]
    assert meta_prompt(kept, exemplars) == (
        "Here are instructions with their scores, in ascending order. A higher score is better.\n\n"
        "text:\nThink first.\nscore:\n12.5\n\n"
        "text:\nLet's solve the problem.\nscore:\n25\n\n"
        "text:\nAdd the numbers.\nscore:\n50\n\n"
        "Each instruction is placed where <INS> is in an input like these. The score is the chance, in percent, "
        "that the model then writes the output shown.\n\n"
        "input:\n<INS>\nQ: What is 1+2?\nA:\noutput:\n3\n\n"
        "input:\n<INS>\nQ: What is 4+4?\nA:\noutput:\n8\n\n"
        "Write a new instruction that is different from the ones above and has a score as high as possible. "
        "Write it in square brackets.\n[")
    assert meta_prompt(kept[:1], []) == (
        "Here are instructions with their scores, in ascending order. A higher score is better.\n\n"
        "text:\nLet's solve the problem.\nscore:\n25\n\n"
        "Write a new instruction that is different from the ones above and has a score as high as possible. "
        "Write it in square brackets.\n[")
    # a small model's p(correct) keeps three significant digits, not the paper's whole percentages
    assert "score:\n0.0239\n" in meta_prompt([Scored(0, START, 0.000239031)], [])


@pytest.mark.parametrize("text,end,expected", [
    ("Add the two numbers.] It works", "stop", "Add the two numbers."),
    ('  "Quoted   and\tspaced."  ', "stop", "Quoted and spaced."),
    ("[Nested brackets]", "length", "Nested brackets"),
    ("Let's think step by step.'", "eos", "Let's think step by step."),
    ("Cut off by the token lim", "length", None),   # never closed: an unfinished sentence
    ("", "stop", None),
    ("] trailing text", "stop", None),
    ("  \"\" ", "stop", None),
    ("x" * 30 + "]", "stop", "x" * 30),
    ("x" * 31 + "]", "stop", None),                 # over max_chars
])
def test_reading_one_proposal(text, end, expected):
    assert read_proposal(text, end, max_chars=30) == expected


def completion(text: str, end: str = "stop") -> Completion:
    return Completion(tokens=(1,), text=text, end=end, logp=-1.0)


def test_a_round_keeps_each_new_instruction_once_and_counts_the_rest():
    drawn = [completion("B.]"), completion(f"{START}]"), completion("A.]"), completion("[B.]"), completion("")]
    assert read_proposals(drawn, {START}, max_chars=50) == (["B.", "A."], 3)


def test_the_best_are_ranked_by_score_and_the_earlier_wins_a_tie():
    history = [Scored(0, "s", 0.2), Scored(1, "a", 0.5), Scored(1, "b", 0.2), Scored(2, "c", 0.5)]
    assert [s.instruction for s in best(history, 3)] == ["a", "c", "s"]
    assert best(history, 1) == [Scored(1, "a", 0.5)]


# ---- the optimisation loop on a scripted model --------------------------------------------------------------------
class ScriptedModel:
    """A LanguageModel whose p(correct) depends only on the instruction (the prompt's first line) and whose
    proposals are scripted per sample() call; it records what it was asked."""

    def __init__(self, p: dict[str, float], rounds: list[list[Completion]] | None = None):
        self.p, self.rounds = p, list(rounds or [])
        self.prompts, self.specs, self.seeds, self.requests = [], [], [], []

    def score(self, requests, batch_size=16, reuse_prefix=False, desc=None):
        self.requests.append(list(requests))
        return [AnswerScore(logprob=math.log(self.p[prompt.split("\n")[0]]), greedy=False, n_tokens=1)
                for prompt, _ in requests]

    def sample(self, prompts, spec, seeds, desc="sampling"):
        if not self.rounds:
            raise AssertionError("this model proposes nothing")
        self.prompts += prompts
        self.specs.append(spec)
        self.seeds += seeds
        return [self.rounds.pop(0)]


class ScriptedSession:
    def __init__(self, lm, device="cpu"):
        self.lm, self.device, self.opened, self.closed = lm, device, 0, False

    @contextmanager
    def language_model(self, adapter):
        assert adapter is None  # OPRO proposes and scores with the untouched model
        self.opened += 1
        yield self.lm

    def close(self):
        self.closed = True


P = {START: 0.2, "A.": 0.5, "B.": 0.1, "C.": 0.3, "E.": 0.6}
SCRIPT = [
    [completion("A.]"), completion("B.] more"), completion("A.]"), completion("]")],       # A, B new; 2 dropped
    [completion(f"{START}]"), completion("C.]"), completion("D", "length"), completion("E.]")],  # C, E new
    [completion(""), completion("x" * 300 + "]")],                                           # nothing valid
]


def context(tmp_path, session, answer_format=None, n_train=8) -> AdaptContext:
    extra = {"format": answer_format} if answer_format is not None else {}
    return AdaptContext(dataset=ArithDataset(seed=0, n_train=n_train, n_test=2), train_skill="add/question", seed=0,
                        fmt=PromptFormat(), cache=StageCache(tmp_path / "stages"), model_key={"name": "scripted"},
                        session=session, **extra)


def scripted_learner(**settings) -> OproLearner:
    return OproLearner(**{"rounds": 3, "proposals": 4, "keep": 2, "exemplars": 2, "batch": 4, **settings})


def test_the_loop_keeps_the_best_and_records_the_trajectory(tmp_path):
    lm = ScriptedModel(P, [list(r) for r in SCRIPT])
    ctx = context(tmp_path, ScriptedSession(lm))
    adapted = scripted_learner().adapt(ctx)
    assert adapted.prefix == "E.\n"
    table = adapted.record.tables["instructions"]
    assert table["columns"] == ["round", "instruction", "score", "kept"]
    assert table["rows"] == [[0, START, pytest.approx(0.2), True], [1, "A.", pytest.approx(0.5), True],
                             [1, "B.", pytest.approx(0.1), False], [2, "C.", pytest.approx(0.3), False],
                             [2, "E.", pytest.approx(0.6), True]]
    assert adapted.record.info == {"best_instruction": "E.", "best_score": pytest.approx(0.6), "best_round": 2,
                                   "start_score": pytest.approx(0.2), "rounds": 3, "scored_instructions": 5,
                                   "dropped_proposals": 2 + 2 + 2, "empty_rounds": [3]}
    # round 2's meta prompt shows the best two after round 1 (B, scored 0.1, is left out), ascending
    second = lm.prompts[1]
    assert second.index(f"text:\n{START}\nscore:\n20") < second.index("text:\nA.\nscore:\n50")
    assert "text:\nB." not in second and second.endswith("Write it in square brackets.\n[")
    assert second.count("input:\n<INS>\nQ: What is ") == 2
    spec = lm.specs[0]
    assert (spec.n, spec.temperature, spec.max_new_tokens, spec.stop) == (4, 1.0, 32, ("\n",))
    assert len(set(lm.seeds)) == 3  # one seeded stream per round
    # every instruction is scored on the same seeded batch of 4 train questions, the instruction line first
    batch = random.Random("0:add/question:opro-batch").sample(ctx.dataset.train("add/question"), 4)
    assert lm.requests[0] == [(f"{START}\nQ: {e.question}\nA:", f" {e.answer}\n") for e in batch]
    assert [r[0][0].split("\n")[0] for r in lm.requests] == [START, "A.", "B.", "C.", "E."]


def test_the_optimisation_is_one_cached_stage(tmp_path):
    first = scripted_learner().adapt(context(tmp_path, ScriptedSession(ScriptedModel(P, [list(r) for r in SCRIPT]))))
    silent = ScriptedSession(None)  # any use of the model would fail: the stage cache must answer
    again = context(tmp_path, silent)
    learner = scripted_learner()
    assert learner.adapt(again).prefix == first.prefix and silent.opened == 0
    assert again.cache.hits == {"opro": 1} and again.cache.misses == {}
    assert learner.recorded_record(again) == first.record
    assert scripted_learner(rounds=2).recorded_record(again) is None  # another setting: another stage


def test_another_optimizer_model_proposes_and_the_model_under_test_scores(tmp_path):
    proposer = ScriptedModel({}, [list(r) for r in SCRIPT])
    built = []

    class Loader:
        name, lora_target_modules = "scripted-optimizer", ["q_proj"]

        def identity(self):
            return {"kind": "scripted", "name": self.name}

        def key(self, device):
            return self.identity()

        def session(self, device):
            built.append(ScriptedSession(proposer, device))
            return built[-1]

    main = ScriptedSession(ScriptedModel(P), device="cuda:1")
    adapted = scripted_learner(optimizer_model=Loader()).adapt(context(tmp_path, main))
    assert adapted.prefix == "E.\n"
    assert [(s.device, s.closed, s.opened) for s in built] == [("cuda:1", True, 3)]
    assert len(main.lm.requests) == 5 and not main.lm.prompts  # the model under test only scores
    assert scripted_learner(optimizer_model=Loader()).key("s", 0)["optimizer_model"] == Loader().identity()


def test_in_a_reasoning_format_the_scored_target_is_the_worked_solution(tmp_path):
    lm = ScriptedModel(P, [list(r) for r in SCRIPT])
    ctx = context(tmp_path, ScriptedSession(lm), answer_format=CotFormat())
    StartInstruction(batch=2).adapt(ctx)
    batch = random.Random("0:add/question:opro-batch").sample(ctx.dataset.train("add/question"), 2)
    a, b = (int(x) for x in batch[0].question.removeprefix("What is ").removesuffix("?").split("+"))
    assert lm.requests[0][0][1] == f" 1. {a} + {b} = {a + b}\nThe answer is {a + b}.\n"


def test_every_setting_keys_the_optimisation_and_the_labels_do_not():
    base = OproLearner().key("add/question", 0)
    for change in [{"start": "Think."}, {"batch": 5}, {"rounds": 2}, {"proposals": 3}, {"keep": 2},
                   {"exemplars": 1}, {"opt_temperature": 0.7}, {"max_new_tokens": 16}, {"max_chars": 80},
                   {"optimizer_model": TinyModel(seed=1)}]:
        assert OproLearner(**change).key("add/question", 0) != base, change
    assert OproLearner(name="x", control_name="y").key("add/question", 0) == base
    control = OproLearner(start="Think.", batch=5, control_name="mine").control()
    assert (control.name, control.start, control.batch, control.control()) == ("mine", "Think.", 5, None)
    assert control.key("s", 0) == {"kind": "instruction", "start": "Think.", "batch": 5, "train_skill": "s", "seed": 0}


# ---- the tiny model -----------------------------------------------------------------------------------------------
def test_an_instructions_score_is_its_mean_p_correct_on_the_batch(tmp_path):
    session = TinyModel().session("cpu")
    ctx = context(tmp_path, session)
    score = StartInstruction(batch=4).adapt(ctx).record.info["start_score"]
    batch = random.Random("0:add/question:opro-batch").sample(ctx.dataset.train("add/question"), 4)
    with session.language_model(None) as lm:
        direct = lm.score([(f"{START}\nQ: {e.question}\nA:", f" {e.answer}\n") for e in batch])
    assert score == pytest.approx(sum(math.exp(s.logprob) for s in direct) / 4, rel=1e-9)
    assert 0 < score < 1e-3  # a random tiny model puts little mass on right answers


class RecordingTracker(NullTracker):
    def __init__(self):
        self.tables, self.summaries = {}, {}

    def table(self, name, columns, rows):
        self.tables[name] = (columns, rows)

    def summary(self, values):
        self.summaries.update(values)


def tiny_cell(tmp_path, tests, learner=None) -> Cell:
    return Cell(model=TinyModel(), learner=learner or OproLearner(rounds=2, batch=4, max_new_tokens=8),
                dataset=ArithDataset(seed=0, n_train=8, n_test=3), train_skill="add/question", test_skills=tests,
                scorer=ExactScorer(batch_size=4), fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "stages"),
                out_dir=tmp_path / "-".join(t.replace("/", "_") for t in tests))


def test_a_tiny_cell_records_the_optimisation_and_reuses_it(tmp_path):
    tracker = RecordingTracker()
    cell = tiny_cell(tmp_path, ["add/question"])
    result = run_cell(cell, tracker)
    assert result["cell"]["learner"] == "opro" and result["cell"]["control"] == "opro-start"
    assert json.loads((cell.out_dir / "result.json").read_text())["adaptation"] == result["adaptation"]
    record = result["adaptation"]["opro"]
    rows = record["tables"]["instructions"]["rows"]
    assert rows[0][:2] == [0, START] and rows[0][3] is True
    assert record["info"]["best_score"] == max(r[2] for r in rows) >= record["info"]["start_score"]
    assert result["adaptation"]["opro-start"]["info"] == {"start_instruction": START,
                                                          "start_score": record["info"]["start_score"]}
    assert tracker.tables["opro/instructions"] == (["round", "instruction", "score", "kept"], rows)
    assert tracker.summaries["adaptation/opro/best_instruction"] == record["info"]["best_instruction"]
    assert result["cache"]["misses"]["opro"] == 2  # the optimisation and the control's start score
    # a cell of another test skill adapts again: both stages come from the cache, with the same record
    other = run_cell(tiny_cell(tmp_path, ["mul/symbol"]), NullTracker())
    assert other["cache"]["hits"]["opro"] == 2 and "opro" not in other["cache"]["misses"]
    assert other["adaptation"] == result["adaptation"]
    # the same cell again: nothing computed, the record read back from the stage cache
    same = run_cell(tiny_cell(tmp_path, ["add/question"]), NullTracker())
    assert same["cache"]["misses"] == {} and same["adaptation"] == result["adaptation"]
    assert same["tests"] == result["tests"]


def test_the_learner_scores_the_test_questions_behind_its_best_instruction(tmp_path):
    cell = tiny_cell(tmp_path, ["add/question"])
    result = run_cell(cell, NullTracker())
    instruction = result["adaptation"]["opro"]["info"]["best_instruction"]
    questions = [json.loads(line) for line in (cell.out_dir / "questions.jsonl").read_text().splitlines()]
    test = cell.dataset.test("add/question")
    with TinyModel().session("cpu").language_model(None) as lm:
        mine = lm.score([(f"{instruction}\nQ: {e.question}\nA:", f" {e.answer}\n") for e in test])
    assert [q["logp_learner"] for q in questions] == pytest.approx([s.logprob for s in mine], abs=1e-5)


# ---- the config: the optimizer model override and bad input ------------------------------------------------------
OVERRIDE = ["model=tiny", "learner=opro", "+model@learner.optimizer_model=tiny", "learner.optimizer_model.seed=1"]


def test_another_optimizer_model_composes_passes_the_preflight_and_runs(compose_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ["dataset.n_train=6", "dataset.n_test=2", "pair.train=add/question", "pair.test=[add/question]",
             "learner.rounds=1", "learner.batch=3", "learner.max_new_tokens=6", "logger=none"]
    assert check_command_line([*OVERRIDE, *small]) == 1
    cfg = compose_config(*OVERRIDE, *small)
    with open_dict(cfg):
        del cfg["hydra"]
    cell = build_cell(cfg, tmp_path / "out")
    optimizer = cell.learner.optimizer_model
    assert isinstance(optimizer, TinyModel) and optimizer.seed == 1 and cell.model.seed == 0
    plain = make(compose_config("model=tiny", "learner=opro").learner)
    assert plain.optimizer_model is None
    assert cell.learner.key("add/question", 0) != plain.key("add/question", 0)
    result = run_cell(cell, NullTracker())
    assert result["adaptation"]["opro"]["info"]["rounds"] == 1
    assert result["config"]["learner"]["optimizer_model"]["seed"] == 1


@pytest.mark.parametrize("args,shows,expects", [
    (["learner.rounds=0"], "learner.rounds=0", "an integer >= 1"),
    (["learner.proposals=1"], "learner.proposals=1", "an integer >= 2"),
    (["learner.keep=0"], "learner.keep=0", "an integer >= 1"),
    (["learner.batch=0"], "learner.batch=0", "an integer >= 1"),
    (["learner.batch=9", "dataset.n_train=8"], "learner.batch=9", "an integer in [1, 8]"),
    (["learner.exemplars=9", "dataset.n_train=8"], "learner.exemplars=9", "an integer in [0, 8]"),
    (["learner.opt_temperature=0"], "learner.opt_temperature=0", "a number > 0"),
    (["learner.start=' '"], "learner.start=' '", "a non-empty instruction of one line"),
    (["learner.optimizer_model=5"], "learner.optimizer_model=5", "+model@learner.optimizer_model=smollm2"),
    (["learner.rounds=two"], "learner.rounds='two'", "an integer"),
])
def test_bad_settings_are_one_line_before_any_model_loads(args, shows, expects, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        check_command_line(["model=tiny", "learner=opro", *args])
    line = str(raised.value)
    assert shows in line and expects in line and "\n" not in line, line
    assert not list(tmp_path.iterdir())


def test_the_control_alone_is_compared_with_the_untouched_model(compose_config):
    control = make(compose_config("learner=opro-start").learner)
    assert (control.name, control.start, control.batch, control.control()) == ("opro-start", START, 8, None)
    learner = make(compose_config("learner=opro").learner)
    assert learner.control().key("s", 0) == control.key("s", 0)  # the two YAMLs agree on the pairing
    assert stable_hash(learner.key("s", 0)) != stable_hash(control.key("s", 0))


# ---- a real optimisation ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_optimises_an_instruction_in_two_rounds(tmp_path, request):
    from ntkeval.backends.huggingface.embedded import EmbeddedModel

    cache_root = request.config.cache.mkdir("ntkeval-models")  # the converted model, kept between slow runs
    session = EmbeddedModel(cache_dir=str(cache_root)).session("cpu")
    ctx = context(tmp_path, session, n_train=16)
    adapted = OproLearner(rounds=2).adapt(ctx)
    info, rows = adapted.record.info, adapted.record.tables["instructions"]["rows"]
    print(json.dumps(adapted.record.to_json(), indent=1))
    assert rows[0][:2] == [0, START] and info["rounds"] == 2
    assert len(rows) >= 3 and all(isinstance(r[1], str) and r[1] and "\n" not in r[1] for r in rows)
    assert info["best_score"] == max(r[2] for r in rows) >= info["start_score"] > 0
    assert adapted.prefix == info["best_instruction"] + "\n"
