"""tune-rft (rejection-sampling fine-tuning) and its control tune-rft-wrong: the equation-list rule on hand-written
paths, the kept and control paths of a hand-built sample set (exact counts, matching, shortfall, repeats), the
training texts of both, one cached samples stage shared by both, the preflight's one-line refusals, and cells on the
tiny model (scripted paths, and the random model's own) whose AdaptationRecord lands in result.json."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

import pytest

from ntkeval.backends.base import Completion
from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache, stable_hash
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.formats.base import Reading
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat, PotFormat, WorkFormat
from ntkeval.learners.base import AdaptContext
from ntkeval.learners.lora import LoraLearner
from ntkeval.learners.rft import (
    RFT_SAMPLES,
    RejectionSampledLearner,
    control_paths,
    distinct,
    equations,
    path_seed,
)
from ntkeval.preflight import check_command_line
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.tracking.base import NullTracker

SKILL = "add/question"
DATA = ArithDataset(seed=0, n_train=3, n_test=2)  # train: 82+77=159, 83+63=146, 56+77=133


# ---- the equation list ---------------------------------------------------------------------------------------------
def test_equations_of_written_steps_keep_only_the_computations():
    steps = ("Add the apples: 82 + 77 = 159.", "159-3   = 156", "so we have 156 apples", "1/2 + 1/4 = 3/4")
    assert equations(Reading("156", steps=steps)) == ("82+77=159", "159-3=156", "1/2+1/4=3/4")
    # the cot and work readings of the same path give the same list: the format's decoration is not an equation
    cot = CotFormat().read(" 1. 82 + 77 = 159\n2. 159 - 3 = 156\nThe answer is 156.", "integer")
    work = WorkFormat().read(" <work>\n82+77 = 159\n159 -3 = 156\n</work>\nThe answer is 156.", "integer")
    assert equations(cot) == equations(work) == ("82+77=159", "159-3=156")
    assert equations(Reading("7", steps=("I think it is seven",))) == ()


def test_equations_of_a_program_are_its_statements_as_python_writes_them():
    program = "x1 = 82+77   # add\n\nx2 = x1 - (3)\nprint( x2 )"
    assert equations(Reading(None, program=program)) == ("x1=82+77", "x2=x1-3", "print(x2)")
    assert equations(PotFormat().read(" ```python\nx1=82 + 77\nprint(x1)\n```", "integer")) == ("x1=82+77", "print(x1)")
    # a program that does not parse: its lines, spacing removed (it is never run here)
    assert equations(Reading(None, program="x1 = (82 +\nprint(x1")) == ("x1=(82+", "print(x1")


def test_distinct_keeps_the_first_path_of_each_equation_list():
    lists = [("1+2=3",), ("1+2=3",), ("2+1=3",), (), ("1+2=3", "3*2=6"), ()]
    assert distinct(lists) == [0, 2, 3, 4]


# ---- kept and control paths ----------------------------------------------------------------------------------------
def test_control_paths_match_question_by_question_then_fill_then_the_data_set_writes_the_rest():
    # q0 needs 2 and has 1 wrong; q1 needs 0 and has 3; q2 needs 3 and has none: 1 matched, 4 short, 3 filled from
    # q1, the last one written by the data set for the last question still short (q2)
    assert control_paths([2, 0, 3], [[5], [1, 2, 3], []]) == ([(0, 5), (1, 1), (1, 2), (1, 3), (2, -1)], 1)
    # enough everywhere: exactly each question's first wrong paths, nothing written by the data set
    assert control_paths([1, 2], [[4, 6], [0, 1, 2]]) == ([(0, 4), (1, 0), (1, 1)], 0)
    # the round-robin fill takes one unused path per question in turn
    assert control_paths([0, 0, 3], [[1, 2], [7, 8], []]) == ([(0, 1), (1, 7), (0, 2)], 0)
    # a model that never errs: every control text is the data set's, one per kept path, on its question
    assert control_paths([2, 1], [[], []]) == ([(0, -1), (0, -1), (1, -1)], 3)
    assert control_paths([2, 1], [[9], []]) == ([(0, 9), (0, -1), (1, -1)], 2)


def path(a: int, b: int, result: int, answer: int | None = None) -> str:
    answer = result if answer is None else answer
    return f" 1. {a} + {b} = {result}\nThe answer is {answer}."


def scripts() -> dict[str, list[str]]:
    """Four paths per train question. q0: right, the same equations spaced differently, right with another
    equation, wrong -> kept 2, wrong 1. q1: right, wrong, the same wrong equations with another answer, another
    wrong -> kept 1, wrong 2. q2: two right, one cut off after a step, one with no answer line -> kept 2, wrong 0."""
    (a0, b0), (a1, b1), (a2, b2) = [map(int, re.findall(r"\d+", e.question)) for e in DATA.train(SKILL)]
    s0, s1, s2 = a0 + b0, a1 + b1, a2 + b2
    return {
        f"What is {a0}+{b0}?": [path(a0, b0, s0), f"1.  {a0}+{b0} =  {s0}\nThe answer is {s0}.", path(b0, a0, s0),
                                path(a0, b0, s0 + 1)],
        f"What is {a1}+{b1}?": [path(a1, b1, s1), path(a1, b1, s1 + 2), path(a1, b1, s1 + 2, s1 + 3),
                                f" 1. {a1} + {b1} + 10 = {s1 + 10}\nThe answer is {s1 + 10}."],
        f"What is {a2}+{b2}?": [path(a2, b2, s2), path(b2, a2, s2), f" 1. {a2} + {b2} = {s2}\n2. {s2} +",
                                f" 1. {a2} + {b2} = {s2}"],
    }


class ScriptedLM:
    """Each prompt's question (after its last "Q: ") gets its script's paths, in order; records every call."""

    def __init__(self, texts: dict[str, list[str]], calls: list):
        self.texts, self.calls = texts, calls

    def sample(self, prompts, spec, seeds, desc=""):
        self.calls.append((list(prompts), spec, list(seeds)))
        out = []
        for prompt in prompts:
            texts = self.texts[prompt.rsplit("Q: ", 1)[1].split("\n")[0]]
            out.append([Completion((1, 2, 3), texts[i % len(texts)], "stop", -2.0) for i in range(spec.n)])
        return out


class ScriptedSession:
    def __init__(self, texts: dict[str, list[str]]):
        self.texts, self.calls = texts, []

    @contextmanager
    def language_model(self, adapter):
        assert adapter is None  # RFT samples the untouched model
        yield ScriptedLM(self.texts, self.calls)


def context(tmp_path, session=None, answer_format=None) -> AdaptContext:
    answer_format = answer_format or CotFormat()
    return AdaptContext(dataset=DATA, train_skill=SKILL, seed=0,
                        fmt=PromptFormat().with_instruction(answer_format.instruction()),
                        cache=StageCache(tmp_path / "stages"), model_key={"model": "scripted"},
                        session=session, format=answer_format)


def rft(**settings) -> RejectionSampledLearner:
    return RejectionSampledLearner(**{"k": 4, "demos": 2, "steps": 2, "batch_size": 2, "lr": 1e-2,
                                      "target_modules": ["q_proj", "v_proj"], **settings})


def test_kept_and_control_paths_of_a_hand_built_sample_set(tmp_path):
    ctx = context(tmp_path, ScriptedSession(scripts()))
    learner = rft()
    drawn = learner.samples(ctx)
    assert [[c["correct"] for c in q["completions"]] for q in drawn] == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert [c["answer"] for c in drawn[2]["completions"]] == [DATA.train(SKILL)[2].answer] * 2 + [None, None]
    chosen = learner.selection(ctx, drawn)
    assert chosen.kept == [[0, 2], [0], [0, 1]]
    assert chosen.wrong == [[3], [1, 3], []]
    # q0: its one wrong path; q1: its first; q2 has none: 3 short -> q1's unused path 3, then the pool from its start
    assert chosen.control == [(0, 3), (1, 1), (1, 3), (2, -1), (2, -1)] and chosen.from_data_set == 2
    record = learner.recorded_record(ctx)
    assert record.info == {"sampled_paths": 12, "correct_paths": 6, "distinct_correct_kept": 5,
                           "miscalculated_rejected": 0, "questions_with_kept": 3, "incorrect_pool": 3, "control_paths": 5,
                           "control_from_data_set": 2,
                           "reference_texts": 3, "training_texts": 8}
    table = record.tables["paths"]
    assert table["columns"] == ["question", "path", "answer", "correct", "kept", "control_uses"]
    assert [row[4] for row in table["rows"]] == [1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0]
    assert [row[5] for row in table["rows"]] == [0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]
    assert table["rows"][0][:2] == ["add/question/train/0", scripts()["What is 82+77?"][0]]


def test_a_right_answer_reached_by_a_wrong_calculation_is_rejected_as_rft_does(tmp_path):
    """RFT keeps a path only when its calculations agree with Python: arith's exact step check rejects a false
    equation or a number the question never showed, even when the stated answer is right; such a path is no wrong
    answer either, so the control cannot use it."""
    (a0, b0), (a1, b1), (a2, b2) = [map(int, re.findall(r"\d+", e.question)) for e in DATA.train(SKILL)]
    s0, s1, s2 = a0 + b0, a1 + b1, a2 + b2
    texts = {
        f"What is {a0}+{b0}?": [path(a0, b0, s0), (f" 1. {a0} + {b0} = {s0 + 1}\n2. {s0 + 1} - 1 = {s0}\n"
                                                   f"The answer is {s0}."), path(a0, b0, s0 + 1)],
        f"What is {a1}+{b1}?": [f" 1. {a1} + {b1} + 10 = {s1 + 10}\n2. {s1 + 10} - 10 = {s1}\nThe answer is {s1}.",
                                path(a1, b1, s1 + 1)],
        f"What is {a2}+{b2}?": [path(a2, b2, s2), path(a2, b2, s2 + 3)],
    }
    ctx = context(tmp_path, ScriptedSession(texts))
    learner = rft()
    drawn = learner.samples(ctx)
    assert [[c["correct"] for c in q["completions"]][:3] for q in drawn] == [[1, 1, 0], [1, 0, 1], [1, 0, 1]]
    chosen = learner.selection(ctx, drawn)
    assert chosen.kept == [[0], [], [0]]  # q0's false "= s0+1" step and q1's unshown 10 are rejected
    assert chosen.miscalculated == 1 + 2  # q0 once; q1 twice (k=4 cycles its 2 scripted paths)
    assert chosen.wrong == [[2], [1], [1]]
    assert learner.recorded_record(ctx).info["miscalculated_rejected"] == 3


def test_learner_and_control_train_on_the_same_references_and_as_many_paths(tmp_path):
    session = ScriptedSession(scripts())
    ctx = context(tmp_path, session)
    learner = rft()
    control = learner.control()
    assert (control.name, control.paths, control.control()) == ("tune-rft-wrong", "incorrect", None)
    right, wrong = learner.training_texts(ctx), control.training_texts(ctx)
    examples = DATA.train(SKILL)
    references = [(ctx.fmt.prompt(e), ctx.fmt.target(CotFormat().target(e, DATA.solution(e)))) for e in examples]
    assert len(right) == len(wrong) == 8 and right[:3] == wrong[:3] == references
    assert references[0] == (CotFormat().instruction() + "\nQ: What is 82+77?\nA:",
                             " 1. 82 + 77 = 159\nThe answer is 159.\n")
    texts = scripts()
    q = lambda i: ctx.fmt.prompt(examples[i])  # the zero-shot prompt, as tune-skill's texts
    t = lambda i, j: " " + list(texts.values())[i][j].strip() + "\n"  # the path as drawn, placed
    assert right[3:] == [(q(0), t(0, 0)), (q(0), t(0, 2)), (q(1), t(1, 0)), (q(2), t(2, 0)), (q(2), t(2, 1))]
    assert wrong[3:6] == [(q(0), t(0, 3)), (q(1), t(1, 1)), (q(1), t(1, 3))]
    # q2 has no wrong path: its two are the data set's wrong solutions of q2 (tune-base's form: same steps, wrong numbers)
    for prompt, text in wrong[6:]:
        assert prompt == q(2) and text.startswith(" 1. ") and "\nThe answer is " in text
        assert CotFormat().read(text.strip(), "integer").answer != examples[2].answer
    # one draw, shared: the control's texts came from the cached samples stage
    assert len(session.calls) == 1
    assert ctx.cache.misses == {RFT_SAMPLES: 1} and ctx.cache.hits[RFT_SAMPLES] >= 1
    prompts, spec, seeds = session.calls[0]
    assert (spec.n, spec.temperature, spec.stop) == (4, 0.7, CotFormat().stop())
    assert seeds == [path_seed(0, e.id, spec) for e in examples] and len(set(seeds)) == 3
    # each question after two worked solutions of the OTHER train questions
    for prompt, example in zip(prompts, examples):
        assert prompt.count("Q: ") == 3 and prompt.endswith(f"Q: {example.question}\nA:")
        assert prompt.count(f"Q: {example.question}\n") == 1 and "\nThe answer is " in prompt
    only_paths = rft(include_reference=False).training_texts(ctx)
    assert only_paths == right[3:]


def test_a_side_with_nothing_to_add_fails_in_one_line_or_falls_back_as_recorded(tmp_path):
    examples = DATA.train(SKILL)
    all_right = {e.question: [f" 1. {e.question[8:-1].replace('+', ' + ')} = {e.answer}\nThe answer is {e.answer}."]
                 for e in examples}
    # a model that never errs: the control tunes on as many wrong answers of the same form, written by the data set
    ctx = context(tmp_path / "a", ScriptedSession(all_right))
    ours, control = rft().training_texts(ctx), rft().control().training_texts(ctx)
    assert len(ours) == len(control) == 6 and ours[:3] == control[:3]  # the 3 references, then 3 paths each
    for (prompt, text), example in zip(control[3:], examples, strict=True):
        assert prompt == ctx.fmt.prompt(example) and text.endswith("\n")
        steps = ctx.format.read(text, "integer")
        assert steps.answer is not None and steps.answer != example.answer  # wrong, in the cot form
    assert [t for _, t in ours[3:]] == [ctx.fmt.target(all_right[e.question][0].strip()) for e in examples]
    info = rft().recorded_record(ctx).info
    assert info["control_from_data_set"] == 3 and info["control_paths"] == 3 and info["incorrect_pool"] == 0
    none_right = {e.question: [" 1. 1 + 1 = 2\nThe answer is 2.", " 1. 1 +"] for e in examples}
    with pytest.raises(UserError, match=r"^learner=tune-rft has nothing to tune on: none of the 12 paths .* has "
                                        r"the right answer.*set learner.include_reference=true$"):
        rft(include_reference=False).training_texts(context(tmp_path / "b", ScriptedSession(none_right)))
    # with the references, no kept path is no failure: both sides tune on the references alone (a warning says so)
    ctx = context(tmp_path / "c", ScriptedSession(none_right))
    assert rft().training_texts(ctx) == rft().control().training_texts(ctx) and len(rft().training_texts(ctx)) == 3


def test_keys_hold_every_setting_and_keep_learner_control_and_tune_skill_apart(tmp_path):
    ctx = context(tmp_path)
    learner = rft()
    adapters = {stable_hash(learner.stage(ctx)), stable_hash(learner.control().stage(ctx))}
    tune_skill = LoraLearner(steps=2, batch_size=2, lr=1e-2, target_modules=["q_proj", "v_proj"])
    adapters.add(stable_hash(tune_skill.stage(ctx)))
    assert len(adapters) == 3
    assert learner.samples_parts(ctx) == learner.control().samples_parts(ctx)  # one draw serves both
    for change in ({"k": 5}, {"temperature": 0.9}, {"top_p": 0.9}, {"max_new_tokens": 64}, {"demos": 1}):
        assert rft(**change).samples_parts(ctx) != learner.samples_parts(ctx), change
        assert rft(**change).key(SKILL, 0) != learner.key(SKILL, 0), change
    assert rft(include_reference=False).key(SKILL, 0) != learner.key(SKILL, 0)
    assert learner.samples_parts(ctx) != learner.samples_parts(context(tmp_path, answer_format=WorkFormat()))


# ---- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    ({"k": 1}, "learner.k=1 is invalid; valid: an integer >= 2"),
    ({"temperature": 0.0}, "learner.temperature=0.0 is invalid; valid: a number > 0"),
    ({"top_p": 1.5}, r"learner.top_p=1.5 is invalid; valid: a number in \(0, 1\]"),
    ({"demos": -1}, "learner.demos=-1 is invalid; valid: an integer >= 0"),
    ({"max_new_tokens": 0}, "learner.max_new_tokens=0 is invalid"),
    ({"paths": "wrong"}, "unknown learner.paths 'wrong'; valid choices: correct, incorrect"),
    ({"answers": "random"}, "invalid learner.answers 'random'; valid choices: correct"),
])
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(UserError, match=message):
        rft(**settings)


def test_the_format_and_data_set_are_checked_before_anything_loads():
    class Unreadable:  # a user's format that cannot read an answer back: nothing to check
        name, reasoning = "freeform", True

    with pytest.raises(UserError, match=r"^learner=tune-rft needs a format whose answers can be read back and "
                                        r"checked: format='freeform' has no read\(\); expected direct, cot"):
        rft().validate_format(Unreadable(), DATA, SKILL)

    class Plain:  # a data set without worked solutions
        name = "plain"

        def answer_kind(self, example):
            return "integer"

    with pytest.raises(UserError, match="data set 'plain' has no solution, format_problem, is_correct "):
        rft().validate_format(CotFormat(), Plain(), SKILL)
    with pytest.raises(UserError, match="format=direct needs a data set that checks answers, and data set 'plain' "
                                        "has no is_correct"):
        rft().validate_format(DirectFormat(), Plain(), SKILL)
    rft().validate_format(DirectFormat(), DATA, SKILL)  # a bare answer is checked too
    rft().validate_format(PotFormat(), DATA, SKILL)
    with pytest.raises(UserError, match="learner.demos=3 is invalid; valid: at most 2"):
        rft(demos=3).validate(DATA, SKILL)


@pytest.mark.parametrize("args, message", [
    (("learner=tune-rft", "format=cot", "scorer=sampled", "learner.k=1"), "learner.k=1 is invalid"),
    (("learner=tune-rft", "format=cot", "scorer=sampled", "learner.demos=32"),
     "learner.demos=32 is invalid; valid: at most 31"),
])
def test_the_command_line_refuses_bad_input_in_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        check_command_line([*args, "pair.train=add/question", "pair.test=[add/question]", "logger=none"])
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not list(tmp_path.iterdir())


def test_the_command_line_accepts_tune_rft_and_its_control(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for learner in ("tune-rft", "tune-rft-wrong"):
        assert check_command_line([f"learner={learner}", "format=cot", "scorer=sampled", "pair.train=add/question",
                                   "pair.test=[add/question]", "logger=none"]) == 1
    assert check_command_line(["learner=tune-rft", "pair.train=add/question", "pair.test=[add/question]",
                               "logger=none"]) == 1  # format=direct: bare answers are checked too


def test_under_direct_a_path_is_the_bare_answer_kept_once_per_question(tmp_path):
    """No equations to tell answers apart: each question's right answer is kept once, the control takes as many of
    the model's wrong answers (distinct ones), and both train on them after the plain train texts."""
    examples = DATA.train(SKILL)
    right = [e.answer for e in examples]
    texts = {e.question: [f" {right[0]}", f" {int(right[0]) + 1}", f" {right[0]}", f" {int(right[0]) + 2}"]
             if q == 0 else [f" {int(e.answer) + 5}", f" {e.answer}"] if q == 1 else [f" {int(e.answer) + 3}"]
             for q, e in enumerate(examples)}
    ctx = context(tmp_path, ScriptedSession(texts), DirectFormat())
    learner = rft(demos=0)
    drawn = learner.samples(ctx)
    chosen = learner.selection(ctx, drawn)
    assert chosen.kept == [[0], [1], []]                 # q0's two right answers are one path; q2 is never right
    assert chosen.wrong == [[1, 3], [0], [0]]            # distinct wrong answers (q1's two draws of +5 are one)
    assert chosen.control == [(0, 1), (1, 0)] and chosen.from_data_set == 0
    pairs = learner.training_texts(ctx)
    control_pairs = learner.control().training_texts(ctx)
    plain = [(ctx.fmt.prompt(e), ctx.fmt.target(e.answer)) for e in examples]
    assert pairs == plain + [(ctx.fmt.prompt(examples[0]), f" {right[0]}\n"), (ctx.fmt.prompt(examples[1]), f" {right[1]}\n")]
    assert control_pairs[:3] == [plain_pair for plain_pair in plain] and len(control_pairs) == len(pairs)
    assert control_pairs[3:] == [(ctx.fmt.prompt(examples[0]), f" {int(right[0]) + 1}\n"),
                                 (ctx.fmt.prompt(examples[1]), f" {int(right[1]) + 5}\n")]


# ---- cells on the tiny model ---------------------------------------------------------------------------------------
def tiny_cell(tmp_path, learner, out: str = "cell") -> Cell:
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner, dataset=DATA, train_skill=SKILL,
                test_skills=[SKILL], scorer=SampledScorer(n=2, max_new_tokens=4), fmt=PromptFormat(),
                format=CotFormat(), seed=0, cache=StageCache(tmp_path / "stages"), out_dir=tmp_path / out)


def test_a_cell_with_scripted_paths_trains_both_and_records_the_paths(tmp_path, monkeypatch):
    """The untouched tiny model's RFT draw is scripted (it never writes a right path); everything else is real."""
    real = HFLanguageModel.sample
    drawn = []

    def sample(self, prompts, spec, seeds, desc="sampling"):
        if desc.startswith("sampling RFT paths"):
            drawn.append(desc)
            return ScriptedLM(scripts(), []).sample(prompts, spec, seeds, desc)
        return real(self, prompts, spec, seeds, desc)

    monkeypatch.setattr(HFLanguageModel, "sample", sample)
    learner = RejectionSampledLearner(k=4, demos=2, steps=2, batch_size=2, lr=1e-2)
    result = run_cell(tiny_cell(tmp_path, learner), NullTracker())
    assert result["status"] == "done" and result["cell"]["control"] == "tune-rft-wrong"
    assert drawn == ["sampling RFT paths of add/question"]  # once, for learner and control
    assert result["cache"]["misses"][RFT_SAMPLES] == 1 and result["cache"]["misses"]["adapters"] == 2
    on_disk = json.loads((tmp_path / "cell" / "result.json").read_text())["adaptation"]
    assert set(on_disk) == {"tune-rft", "tune-rft-wrong"}
    info = on_disk["tune-rft"]["info"]
    assert (info["sampled_paths"], info["distinct_correct_kept"], info["control_paths"],
            info["control_from_data_set"]) == (12, 5, 5, 2)
    assert len(on_disk["tune-rft-wrong"]["tables"]["paths"]["rows"]) == 12
    # a rerun finds every stage cached: nothing sampled or trained, the record read back from the samples stage
    again = run_cell(tiny_cell(tmp_path, RejectionSampledLearner(k=4, demos=2, steps=2, batch_size=2, lr=1e-2),
                               "again"), NullTracker())
    assert drawn == ["sampling RFT paths of add/question"] and again["cache"]["misses"] == {}
    assert again["adaptation"] == on_disk and again["tests"] == result["tests"]


def test_a_cell_on_the_random_tiny_model_runs_end_to_end(tmp_path):
    """The random model writes no right path: both sides tune on the worked solutions alone, and say so."""
    learner = RejectionSampledLearner(k=2, demos=1, max_new_tokens=6, steps=2, batch_size=2, lr=1e-2)
    result = run_cell(tiny_cell(tmp_path, learner), NullTracker())
    info = result["adaptation"]["tune-rft"]["info"]
    assert result["status"] == "done" and info["sampled_paths"] == 6
    assert (info["distinct_correct_kept"], info["control_paths"], info["training_texts"]) == (0, 0, 3)


@pytest.mark.slow
def test_tune_rft_on_smollm2_keeps_right_paths_of_its_own(tmp_path, request, capsys):
    """SmolLM2-135M writes chain-of-thought additions after two worked examples: some of its paths are right and
    kept, more are wrong (the control's). Prints the counts; run with launch/test.sh -m slow (8.5 minutes on 2
    cores shared with other jobs, most of it sampling)."""
    learner = RejectionSampledLearner(k=4, demos=2, max_new_tokens=40, steps=8, batch_size=8, lr=2e-3)
    built = Cell(model=EmbeddedModel(cache_dir=str(request.config.cache.mkdir("ntkeval-models"))), learner=learner,
                 dataset=ArithDataset(seed=0, n_train=8, n_test=4), train_skill=SKILL, test_skills=[SKILL],
                 scorer=SampledScorer(n=2, max_new_tokens=32), fmt=PromptFormat(), format=CotFormat(), seed=0,
                 cache=StageCache(tmp_path / "stages"), out_dir=tmp_path / "cell")
    result = run_cell(built, NullTracker())
    info = result["adaptation"]["tune-rft"]["info"]
    with capsys.disabled():
        print(f"\nsmollm2 tune-rft on {SKILL} (k=4, demos=2, 8 questions): {info}; row: {result['tests'][0]}")
    assert info["sampled_paths"] == 32 and 0 < info["distinct_correct_kept"] <= info["correct_paths"]
    assert info["control_paths"] == info["distinct_correct_kept"] and info["incorrect_pool"] > 0
    assert info["training_texts"] == 8 + info["distinct_correct_kept"]
    assert result["adaptation"]["tune-rft-wrong"]["info"] == info
