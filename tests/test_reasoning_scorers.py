"""Scorers that read reasoning, on hand-checkable fakes: a scripted language model (each role writes the listed
completions), small answer formats of our own (chain-of-thought lines, a program), a fake sandbox and a data set with
backward questions and exact step checks. Verdicts in every format (programs run in one batch, a failed program a
wrong answer), stop strings from the format, majority, verify and process on values worked out by hand, one cached
samples stage shared by every scorer, and direct keys exactly as before formats."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import pytest

from ntkeval.backends.base import Completion, SamplingSpec
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import stable_hash
from ntkeval.data.answer_kinds import equivalent
from ntkeval.data.answer_reading import final_answer
from ntkeval.data.arith import ArithDataset
from ntkeval.data.base import Example
from ntkeval.errors import UserError
from ntkeval.formats.base import Reading
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat, PotFormat
from ntkeval.prompts import PromptFormat
from ntkeval.sandbox import sandbox_problem
from ntkeval.scorers import reading as reading_module
from ntkeval.scorers import sample_stages
from ntkeval.scorers.base import Role, Roles
from ntkeval.scorers.majority import MajorityScorer, majority_correct
from ntkeval.scorers.ntk import NtkScorer
from ntkeval.scorers.process import ProcessScorer
from ntkeval.scorers.reading import ProgramLimits, answers
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.scorers.verify import VerifyScorer, pick


# ---- fakes ---------------------------------------------------------------------------------------------------------
class Cot:
    """Steps one a line, the last line "The answer is X."."""
    name, reasoning = "cot", True

    def identity(self) -> dict:
        return {"name": "cot"}

    def instruction(self) -> str:
        return ""

    def target(self, example, solution) -> str:
        return ""

    def stop(self) -> tuple[str, ...]:
        return ("\n\n",)

    def read(self, completion: str, kind: str) -> Reading:
        lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
        return Reading(final_answer(lines[-1], kind) if lines else None, None, tuple(lines[:-1]))


class Pot(Cot):
    """The whole completion is a program."""
    name = "pot"

    def identity(self) -> dict:
        return {"name": "pot"}

    def read(self, completion: str, kind: str) -> Reading:
        return Reading(None, completion)


@dataclass
class Run:
    stdout: str
    status: str
    detail: str = ""


class Sandbox:
    """print(<text>) prints the text; `loop` times out; anything else is an error. Counts its batches."""

    def __init__(self):
        self.batches: list[list[str]] = []

    def __call__(self, programs, timeout_s, memory_mb):
        self.batches.append(list(programs))
        out = []
        for p in programs:
            printed = re.fullmatch(r"print\((.*)\)", p.strip())
            out.append(Run(printed.group(1) + "\n", "ok") if printed else
                       Run("", "timeout") if p == "loop" else Run("", "error", "NameError"))
        return out


class Arith:
    """"What is a+b?" questions; backward: "x + b = <candidate>. What is x?" recovers a; steps "a + b = c"
    checked exactly (skill "nocheck": cannot check)."""
    name = "fake-arith"

    def answer_kind(self, example):
        return "integer"

    def is_correct(self, example, given):
        return equivalent(given, example.answer, "integer")

    def backward_question(self, example, candidate):
        a, b = re.findall(r"\d+", example.question)
        return f"x + {b} = {candidate}. What is x?", a

    def check_steps(self, example, steps):
        if example.skill == "nocheck":
            return None
        ok = bool(steps)
        for step in steps:
            match = re.fullmatch(r"(\d+) \+ (\d+) = (\d+)", step)
            ok = ok and bool(match) and int(match[1]) + int(match[2]) == int(match[3])
        return ok


class ScriptedLM:
    """Each question (the prompt's last line) gets its script's completions, in order, as many as asked."""

    def __init__(self, scripts: dict[str, list[str]], calls: list):
        self.scripts, self.calls = scripts, calls

    def sample(self, prompts, spec, seeds, desc=""):
        self.calls.append((list(prompts), spec))
        out = []
        for prompt in prompts:
            question = prompt.split("Q: ")[-1].split("\n")[0]
            texts = self.scripts[question]
            out.append([Completion((1, 2), texts[i % len(texts)], "stop", -1.0) for i in range(spec.n)])
        return out

    def score_completions(self, prompts, completions, batch_size=16, desc=""):
        return [[-1.0] * len(cs) for cs in completions]  # every model gives every completion the same probability


Q1 = Example("s/test/0", "s", "What is 3+4?", "7")
Q2 = Example("s/test/1", "s", "What is 5+4?", "9")


class View:
    """The cell's SkillView with scripted roles and a dict for a stage cache that counts what it computes."""

    def __init__(self, scripts: dict[str, dict[str, list[str]]], fmt=None, examples=(Q1, Q2), store=None,
                 seed: int = 0):
        self.test_skill, self.examples, self.dataset = examples[0].skill, list(examples), Arith()
        self.fmt, self.seed = PromptFormat(), seed
        if fmt is not None:
            self.format = fmt
        self.roles = Roles(base=Role("base"), control=Role("control", object(), {"role": "control"}),
                           learner=Role("learner", object(), {"role": "learner"}), seed=seed)
        self.scripts, self.store = scripts, {} if store is None else store
        self.computed: list[str] = []
        self.recorded: list = []
        self.calls: list = []

    def record(self, stage, compute):
        self.recorded.append(stage)
        key = stable_hash([stage.kind, stage.role.key, stage.parts])
        if key not in self.store:
            self.computed.append(stage.kind)
            self.store[key] = compute()
        return self.store[key]

    @contextmanager
    def open(self, role):
        yield ScriptedLM(self.scripts[role.name], self.calls), ""


def stage_keys(stages) -> list[str]:
    return sorted(stable_hash([s.kind, s.role.key, s.parts]) for s in stages)


def scripts(control: dict, learner: dict, base: dict | None = None) -> dict:
    return {"base": base or control, "control": control, "learner": learner}


# ---- verdicts in every format ------------------------------------------------------------------------------------
def test_direct_reads_as_before_formats_and_keys_are_unchanged():
    spec, role = SamplingSpec(n=2), Role("base")
    assert sample_stages.sample_stage(spec, role, 0).parts == {
        "sampling": spec.identity(), "seed": 0, "parser": sample_stages.PARSER_VERSION,
        "equivalence": sample_stages.EQUIVALENCE_VERSION, "version": sample_stages.SAMPLES_VERSION}
    texts = [" 7", " The answer is 9.", " seven"]
    assert answers(texts, ["integer"] * 3, None, ProgramLimits()) == [
        {"answer": "7", "unparsable": 0}, {"answer": "9", "unparsable": 0}, {"answer": None, "unparsable": 1}]
    # the identities a direct cell had before formats (stop ["\n"] by default, nothing else)
    assert SampledScorer().identity() == {"name": "sampled", "n": 16, "temperature": 1.0, "top_p": 1.0,
                                          "max_new_tokens": 16, "stop": ["\n"]}
    assert NtkScorer().identity()["stop"] == ["\n"] and "programs" not in NtkScorer().identity()
    bound = SampledScorer()
    bound.bind_format(DirectFormat())  # what a cell of the default format binds: nothing changes
    roles = View({}).roles
    assert bound.identity() == SampledScorer().identity() and bound.stages(roles) == SampledScorer().stages(roles)


def test_a_reasoning_format_reads_its_last_line_and_keys_its_samples():
    view = View(scripts({"What is 3+4?": ["3 + 4 = 7\nThe answer is 7."], "What is 5+4?": ["5 + 4 = 8\nSo 8."]},
                        {"What is 3+4?": ["x"], "What is 5+4?": ["x"]}), fmt=Cot())
    drawn = sample_stages.samples(view, SamplingSpec(n=2), view.roles.control)
    assert [(c["answer"], c["correct"], c["unparsable"]) for q in drawn for c in q["completions"]] == \
        [("7", 1, 0)] * 2 + [("8", 0, 0)] * 2
    parts = view.recorded[0].parts
    assert parts["reading"] == {"format": {"name": "cot"}, "version": reading_module.READING_VERSION,
                                "programs": {"timeout_s": 5.0, "memory_mb": 512}}


def test_programs_run_in_one_batch_and_a_failed_program_is_a_wrong_answer():
    sandbox = Sandbox()
    texts = ["print(7)", "loop", "import os", "print(seven)", "print(6)"]
    read = answers(texts, ["integer"] * 5, Pot(), ProgramLimits(timeout_s=2.0, memory_mb=64), run=sandbox)
    assert sandbox.batches == [texts]
    assert [(r["answer"], r["unparsable"], r["program_status"]) for r in read] == [
        ("7", 0, "ok"), (None, 0, "timeout"), (None, 0, "error"), (None, 1, "ok"), ("6", 0, "ok")]


def test_sampled_works_in_a_program_format_with_one_sandbox_batch_per_stage(monkeypatch):
    sandbox = Sandbox()
    monkeypatch.setattr(reading_module, "sandbox_runner", lambda: sandbox)
    view = View(scripts({"What is 3+4?": ["print(7)", "loop"], "What is 5+4?": ["print(8)", "print(9)"]},
                        {"What is 3+4?": ["print(7)"], "What is 5+4?": ["print(9)"]}), fmt=Pot())
    row, questions = SampledScorer(n=2).compare(view)
    # control (= base's script): 3+4 -> 1/2 right, 5+4 -> 1/2; learner: all right
    assert (row["p_control"], row["p_learner"], row["delta"]) == (0.5, 1.0, 0.5)
    assert row["program_failed_control"] == 0.25 and row["program_failed_learner"] == 0.0
    assert len(sandbox.batches) == 3  # base, control, learner: one batch each
    assert questions[0]["answers_control"] == ["7", None]


def test_ntk_reads_a_reasoning_format_and_weighs_whole_completions():
    # equal log p under both models (weights 1): every estimate is 0; the verdicts are the format's
    control = {"What is 3+4?": ["3 + 4 = 7\nThe answer is 7.", "3 + 4 = 8\nThe answer is 8."],
               "What is 5+4?": ["5 + 4 = 9\nThe answer is 9."]}
    learner = {"What is 3+4?": ["3 + 4 = 7\nThe answer is 7."], "What is 5+4?": ["The answer is 1."]}
    view = View(scripts(control, learner), fmt=Cot())
    row, _ = NtkScorer(n=2).compare(view)
    assert row["p_control"] == pytest.approx(0.75) and row["acc_learner"] == pytest.approx(0.5)
    assert row["delta_balanced"] == row["delta_mirror"] == row["delta_importance"] == 0.0
    logps = [s for s in view.recorded if s.kind == "sample-logps"]
    assert len(logps) == 2 and all(s.parts["format"] == {"name": "cot"} for s in logps)


def test_stop_strings_default_to_the_formats_and_an_explicit_list_wins():
    scorer = SampledScorer(n=2)
    assert scorer.spec.stop == ("\n",)  # unbound: direct
    scorer.bind_format(Cot())
    assert scorer.spec.stop == ("\n\n",) and scorer.identity()["stop"] == ["\n\n"]
    assert scorer.identity()["programs"] == {"timeout_s": 5.0, "memory_mb": 512}
    explicit = SampledScorer(n=2, stop=["END"])
    explicit.bind_format(Cot())
    assert explicit.spec.stop == ("END",)
    view = View(scripts({"What is 3+4?": ["7"], "What is 5+4?": ["9"]}, {"What is 3+4?": ["7"], "What is 5+4?": ["9"]}),
                fmt=Cot())
    SampledScorer(n=2).compare(view)  # unbound scorer, reasoning view: the view's format decides
    assert {spec.stop for _, spec in view.calls} == {("\n\n",)}
    with pytest.raises(UserError, match="scorer.stop='x'.*valid"):
        SampledScorer(stop="x")
    with pytest.raises(UserError, match="scorer.program_timeout_s=0.*valid"):
        SampledScorer(program_timeout_s=0)


def test_the_stages_a_reasoning_scorer_plans_are_the_stages_it_records():
    for scorer in (SampledScorer(n=2), MajorityScorer(n=2, k=[1, 2])):
        scorer.bind_format(Cot())
        view = View(scripts({"What is 3+4?": ["7"], "What is 5+4?": ["9"]},
                            {"What is 3+4?": ["7"], "What is 5+4?": ["9"]}), fmt=Cot())
        scorer.compare(view)
        keys = lambda stages: sorted(stable_hash([s.kind, s.role.key, s.parts]) for s in stages)
        assert keys(view.recorded) == keys(scorer.stages(view.roles))


# ---- majority ----------------------------------------------------------------------------------------------------
def test_majority_rows_hold_exact_maj_at_k_per_role():
    # control on 3+4: 7, 7, 8, 9 (maj@1 = 1/2; maj@2: pairs {77}: 1, {78},{79} x2: 1/2 each, {89}: 0 -> (1 + 4/2)/6 = 1/2;
    # maj@4: 7 wins -> 1); on 5+4: 9, 1, 2, 3 (maj@1 = 1/4, maj@2 = 3 pairs with 9 tie 1/2 -> 1.5/6 = 1/4; maj@4: 4-way
    # tie -> 1/4). Learner always right.
    control = {"What is 3+4?": ["7", "7", "8", "9"], "What is 5+4?": ["9", "1", "2", "3"]}
    learner = {"What is 3+4?": ["7"], "What is 5+4?": ["9"]}
    row, questions = MajorityScorer(n=4, k=[2, 1, 4]).compare(View(scripts(control, learner)))
    assert row["head_k"] == 2 and row["k"] == [2, 1, 4]
    assert row["maj@1_control"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert row["maj@2_control"] == pytest.approx((1 / 2 + 1 / 4) / 2) == row["p_control"]
    assert row["maj@4_control"] == pytest.approx((1 + 1 / 4) / 2)
    assert row["maj@4_learner"] == row["p_learner"] == 1.0
    assert row["delta"] == pytest.approx(1 - 3 / 8) and row["delta@4"] == pytest.approx(1 - 5 / 8)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] and -1 <= row["ci_low"]
    assert questions[0]["maj@4_control"] == 1.0 and questions[1]["maj@4_control"] == 0.25
    assert questions[0]["delta"] == pytest.approx(0.5)


def test_majority_k_is_checked_against_n():
    for k in ([], [0], [1, 21], [5, 5], [1.5]):
        with pytest.raises(UserError, match=r"scorer.k=.*valid: a non-empty list of distinct integers in \[1, "
                                            r"scorer.n=20\]"):
            MajorityScorer(n=20, k=k)


def test_equal_answers_vote_together():
    completions = [{"answer": a, "correct": int(a in ("0.5", "1/2"))} for a in ("0.5", "1/2", "0.3", "0.3", None)]
    # 0.5 and 1/2 are one group of 2 against 0.3 x 2, one abstains: maj@5 is a tie -> 1/2
    assert majority_correct(completions, "decimal", 5) == Fraction(1, 2)


# ---- one samples stage for every scorer ----------------------------------------------------------------------------
def test_sampled_then_majority_computes_no_new_samples():
    control = {"What is 3+4?": ["7", "8"], "What is 5+4?": ["9", "9"]}
    learner = {"What is 3+4?": ["7"], "What is 5+4?": ["9"]}
    store: dict = {}
    first = View(scripts(control, learner), store=store)
    SampledScorer(n=4).compare(first)
    assert first.computed == ["samples"] * 3
    again = View(scripts(control, learner), store=store)
    MajorityScorer(n=4, k=[1, 3]).compare(again)
    assert again.computed == [] and again.calls == []


# ---- process -----------------------------------------------------------------------------------------------------
RIGHT_7, LUCKY_7, WRONG_8, BARE_7 = ("3 + 4 = 7\nThe answer is 7.", "3 + 4 = 8\nThe answer is 7.",
                                     "3 + 4 = 8\nThe answer is 8.", "The answer is 7.")
RIGHT_9 = "5 + 4 = 9\nThe answer is 9."


def test_process_counts_completions_right_for_the_right_reasons():
    # control on 3+4: right, lucky (wrong step, right answer), wrong, no steps -> process 1/4, accuracy 3/4,
    # steps right 1/4; on 5+4 all right. Learner all right.
    control = {"What is 3+4?": [RIGHT_7, LUCKY_7, WRONG_8, BARE_7], "What is 5+4?": [RIGHT_9]}
    learner = {"What is 3+4?": [RIGHT_7], "What is 5+4?": [RIGHT_9]}
    row, questions = ProcessScorer(n=4).compare(View(scripts(control, learner), fmt=Cot()))
    assert row["p_control"] == pytest.approx((1 / 4 + 1) / 2) and row["p_learner"] == 1.0
    assert row["acc_control"] == pytest.approx((3 / 4 + 1) / 2)
    assert row["steps_right_control"] == pytest.approx((1 / 4 + 1) / 2)
    assert row["delta"] == pytest.approx(1 - 5 / 8) and row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert questions[0]["p_control"] == 0.25 and questions[0]["acc_control"] == 0.75 and questions[0]["delta"] == 0.75


def test_process_refuses_direct_a_data_set_without_checks_and_unchecked_questions():
    scorer = ProcessScorer(n=2)
    with pytest.raises(UserError, match="format=direct writes none; valid: format=cot"):
        scorer.bind_format(None)
    with pytest.raises(UserError, match="dataset=plain has none; valid"):
        scorer.validate_data(type("Plain", (), {"name": "plain"})())
    nocheck = Example("nocheck/test/0", "nocheck", "What is 3+4?", "7")
    view = View(scripts({"What is 3+4?": [RIGHT_7]}, {"What is 3+4?": [RIGHT_7]}), fmt=Cot(), examples=(nocheck,))
    with pytest.raises(UserError, match="cannot check the steps of question 'nocheck/test/0'"):
        scorer.compare(view)


# ---- verify ------------------------------------------------------------------------------------------------------
def test_pick_weighs_votes_by_the_backward_score_with_ties_by_votes_then_first_seen():
    def cand(answer, votes, score, correct):
        return {"answer": answer, "votes": votes, "score": score, "correct": correct}

    # 2 x 0.5 == 1 x 1.0: the tie goes to more votes
    assert pick({"candidates": [cand("a", 2, 0.5, 0), cand("b", 1, 1.0, 1)]})["verified"] == "a"
    # equal products and votes: first seen
    assert pick({"candidates": [cand("a", 1, 0.5, 0), cand("b", 1, 0.5, 1)]})["verified"] == "a"
    # a checked minority beats an unchecked majority, and the change is counted
    got = pick({"candidates": [cand("a", 3, 0.0, 0), cand("b", 1, 0.25, 1)]})
    assert got == {"verified": "b", "verified_correct": 1, "voted_correct": 0, "changed": 1}
    assert pick({"candidates": []})["verified_correct"] == 0


BACKWARD = {"x + 4 = 8. What is x?": ["4"], "x + 4 = 7. What is x?": ["3"], "x + 4 = 9. What is x?": ["5", "6"]}


def test_verify_re_ranks_the_sampled_candidates_by_their_backward_checks():
    # control on 3+4 votes 8 (x3) over 7 (x2); backward: 8 recovers x = 4, not 3 (score 0), 7 recovers 3 (score 1):
    # verified 7, right, where the vote was wrong. On 5+4 the only candidate 9 scores 1/2: right either way.
    # The learner answers 8 then 9: its only candidates are verified as they are.
    control = {"What is 3+4?": ["8", "8", "8", "7", "7"], "What is 5+4?": ["9"], **BACKWARD}
    learner = {"What is 3+4?": ["8"], "What is 5+4?": ["9"], **BACKWARD}
    view = View(scripts(control, learner))
    row, questions = VerifyScorer(n=5, m=2).compare(view)
    assert (row["p_control"], row["p_learner"], row["delta"]) == (1.0, 0.5, -0.5)
    assert (row["vote_control"], row["vote_learner"], row["changed_control"], row["changed_learner"]) == \
        (0.5, 0.5, 0.5, 0.0)
    assert questions[0]["scores_control"] == {"8": 0.0, "7": 1.0} and questions[1]["scores_control"] == {"9": 0.5}
    assert questions[0]["verified_control"] == "7" and questions[0]["delta"] == -1.0
    # planned stages are the recorded ones; a second run computes nothing
    assert stage_keys(view.recorded) == stage_keys(VerifyScorer(n=5, m=2).stages(view.roles))
    again = View(scripts(control, learner), store=view.store)
    assert VerifyScorer(n=5, m=2).compare(again)[0] == row and again.computed == []


def test_verify_without_backward_questions_is_the_majority_and_loads_no_model_for_them():
    class NoBackward(Arith):
        def backward_question(self, example, candidate):
            return None

    control = {"What is 3+4?": ["8", "8", "7"], "What is 5+4?": ["9"]}
    view = View(scripts(control, control))
    view.dataset = NoBackward()
    row, _ = VerifyScorer(n=3, m=2).compare(view)
    assert row["p_control"] == row["vote_control"] == 0.5 and row["unverifiable_control"] == 1.0
    assert len(view.calls) == 2  # the forward samples of control and learner only
    with pytest.raises(UserError, match="dataset=plain has none; valid"):
        VerifyScorer().validate_data(type("Plain", (), {"name": "plain"})())
    with pytest.raises(UserError, match="scorer.m=1 is invalid"):
        VerifyScorer(m=1)


# ---- on a tiny model ---------------------------------------------------------------------------------------------
class TinyView(View):
    """The same view with a tiny transformer for every role (the learner: the same weights, another stream)."""

    def __init__(self, store):
        super().__init__({}, store=store)
        self.model, self.tokenizer = TinyModel(arch="llama", initializer_range=0.3).load("cpu")

    @contextmanager
    def open(self, role):
        self.calls.append(role.name)
        yield HFLanguageModel(self.model, self.tokenizer), ""


def test_on_a_tiny_model_maj_at_1_is_the_sampled_accuracy_from_the_same_cached_samples():
    store: dict = {}
    first = TinyView(store)
    sampled, _ = SampledScorer(n=6, max_new_tokens=3).compare(first)
    then = TinyView(store)
    majority, _ = MajorityScorer(n=6, k=[1, 6], max_new_tokens=3).compare(then)
    assert then.computed == [] and then.calls == []
    for role in ("base", "control", "learner"):
        assert majority[f"maj@1_{role}"] == pytest.approx(sampled[f"p_{role}"], abs=1e-12)
        assert majority[f"unparsable_{role}"] == sampled[f"unparsable_{role}"]


def test_lists_from_the_config_are_accepted():
    from omegaconf import OmegaConf
    scorer = MajorityScorer(n=4, k=OmegaConf.create([1, 4]), stop=OmegaConf.create(["\n\n"]))
    assert scorer.k == [1, 4] and scorer.spec.stop == ("\n\n",)


def test_program_answers_run_in_the_real_sandbox():
    """The real pot format and sandbox: a program that prints the answer is read, one that loops, one that opens a
    socket and one that crashes are wrong answers with their statuses, in one batch."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(f"no sandbox here: {problem}")
    fence = "```"
    texts = [f"{fence}python\nprint(3 + 4)\n{fence}", f"{fence}python\nwhile True:\n    pass\n{fence}",
             f"{fence}python\nimport socket\nsocket.socket()\n{fence}", f"{fence}python\n1 / 0\n{fence}", "seven"]
    read = answers(texts, ["integer"] * 5, PotFormat(), ProgramLimits(timeout_s=1.0, memory_mb=256))
    assert [r["answer"] for r in read] == ["7", None, None, None, None]
    assert [r.get("program_status") for r in read] == ["ok", "timeout", "forbidden", "error", None]
    assert [r["unparsable"] for r in read] == [0, 0, 0, 0, 1]  # no program at all: nothing to read


# ---- with the real formats and arith -------------------------------------------------------------------------------
def arith_view(control: dict, learner: dict, fmt) -> View:
    view = View(scripts(control, learner), fmt=fmt, examples=ARITH.test("cplex/question"))
    view.dataset = ARITH
    return view


ARITH = ArithDataset(seed=0, n_train=2, n_test=2, max_operand=9)


def test_real_cot_solutions_are_right_for_the_right_reasons_and_a_changed_step_is_not():
    right = {e.question: [CotFormat().target(e, ARITH.solution(e))] for e in ARITH.test("cplex/question")}
    # the same solutions with the first step's result changed: the answer line still right, the steps not
    altered = {q: [t[0].replace(" = ", " = 1", 1)] for q, t in right.items()}
    row, _ = ProcessScorer(n=2).compare(arith_view(right, altered, CotFormat()))
    assert (row["p_control"], row["acc_control"], row["steps_right_control"]) == (1.0, 1.0, 1.0)
    assert (row["p_learner"], row["acc_learner"], row["steps_right_learner"]) == (0.0, 1.0, 0.0)
    assert row["delta"] == -1.0


def test_real_pot_programs_are_run_and_read(monkeypatch):
    if sandbox_problem():
        pytest.skip(f"no sandbox here: {sandbox_problem()}")
    right = {e.question: [PotFormat().target(e, ARITH.solution(e))] for e in ARITH.test("cplex/question")}
    wrong = {q: [t[0].replace("print(x4)", "print(x4 + 1)")] for q, t in right.items()}
    row, _ = SampledScorer(n=2).compare(arith_view(right, wrong, PotFormat()))
    assert (row["p_control"], row["p_learner"], row["program_failed_control"]) == (1.0, 0.0, 0.0)


def test_verify_with_arith_backward_questions():
    # on each question the control votes a wrong answer (answer + 1) twice and the right one once; asked back, the
    # right answer recovers the masked number and the wrong one does not: verified right, voted wrong
    forward, backward = {}, {}
    for e in ARITH.test("cplex/question"):
        wrong = str(int(e.answer) + 1)
        forward[e.question] = [wrong, wrong, e.answer]
        question, masked = ARITH.backward_question(e, e.answer)
        backward[question] = [f"The answer is {masked}."]
        question_w, masked_w = ARITH.backward_question(e, wrong)
        backward[question_w] = [str(int(masked_w) + 5)]
    row, _ = VerifyScorer(n=3, m=2).compare(arith_view({**forward, **backward}, {**forward, **backward}, None))
    assert (row["p_control"], row["vote_control"], row["changed_control"]) == (1.0, 0.0, 1.0)
