"""The sampled estimators are unbiased: on tiny models whose completions are at most two tokens, the exact
p_learner(correct) - p_control(correct) is a finite sum over every completion, and the estimators' mean over many
seeds must agree with it within three of its standard errors (a deterministic check: the seeds are fixed).

The learner is the control with a bias on digit tokens (a model that learned to answer with a number); "correct"
is the event the answer parser reads an integer. Both are arbitrary: unbiasedness must hold for any pair of models
and any event, and these make the difference large enough that a biased estimator is caught (one test shows
the check catches samples drawn at another temperature than the weights assume). The ntk scorer's weights use each
sampler's own log p as recorded while drawing and the other model's from a teacher-forced pass; the last tests check
that, that the stages it plans are the ones it records, and its sparse-control flags."""

import math
from contextlib import contextmanager

import pytest
import torch
from sampling_fakes import AnyInteger, LogitBias

from ntkeval.backends.base import Completion, SamplingSpec
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.sampling import _eos_ids, _finish, completion_logprobs, draw
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import stable_hash
from ntkeval.data.answer_reading import final_answer
from ntkeval.data.base import Example
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.base import Role, Roles
from ntkeval.scorers.ntk import NtkScorer
from ntkeval.scorers.sample_stages import samples
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.stats import estimators

MAX_NEW = 2
QUESTIONS = [Example("t/test/0", "t", "What is 3+4?", "7"), Example("t/test/1", "t", "What is 5+4?", "9")]
SEEDS = range(30)


def correct(text: str) -> int:
    return int(final_answer(text, "integer") is not None)


class TwoModelView:
    """The cell's SkillView for a scorer, with the control and the learner as two separate models, no cache."""

    def __init__(self, models: dict, tokenizer, seed: int):
        self.test_skill, self.examples, self.dataset = "t", QUESTIONS, AnyInteger()
        self.fmt, self.seed = PromptFormat(), seed
        self.roles = Roles(base=Role("base"), control=Role("control", object(), {"role": "control", "seed": seed}),
                           learner=Role("learner", object(), {"role": "learner", "seed": seed}), seed=seed)
        self.models, self.tokenizer = models, tokenizer

    def record(self, stage, compute):
        return compute()

    @contextmanager
    def open(self, role):
        yield HFLanguageModel(self.models[role.name], self.tokenizer), ""


@pytest.fixture(scope="module")
def models():
    control, tokenizer = TinyModel(arch="llama", initializer_range=0.3).load("cpu")
    digits = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).strip().isdigit()]
    bias = torch.zeros(len(tokenizer))
    bias[digits] = 0.7
    learner = LogitBias(control, bias).eval()
    return {"base": control, "control": control, "learner": learner}, tokenizer


@torch.no_grad()
def exact_p_correct(model, tokenizer, prompt: str, stop=("\n",)) -> float:
    """p(correct) summed over every completion of at most two tokens, ended as `draw` ends them."""
    eos = _eos_ids(model, tokenizer)
    ids = tokenizer(prompt)["input_ids"]
    lp1 = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
    vocab = lp1.numel()
    lp2 = torch.log_softmax(model(torch.tensor([ids + [t] for t in range(vocab)])).logits[:, -1].double(), -1)
    total = 0.0
    for t1 in range(vocab):
        ended = _finish(tokenizer, [t1], stop, eos)
        if ended is not None:
            total += math.exp(lp1[t1]) * correct(ended[0])
            continue
        for t2 in range(vocab):
            ended = _finish(tokenizer, [t1, t2], stop, eos)
            text = ended[0] if ended else tokenizer.decode([t1, t2], skip_special_tokens=True)
            total += math.exp(lp1[t1] + lp2[t1, t2]) * correct(text)
    return total


@pytest.fixture(scope="module")
def exact_delta(models):
    by_role, tokenizer = models
    fmt = PromptFormat()
    deltas = [exact_p_correct(by_role["learner"], tokenizer, fmt.prompt(e))
              - exact_p_correct(by_role["control"], tokenizer, fmt.prompt(e)) for e in QUESTIONS]
    return sum(deltas) / len(deltas)


def pooled(rows: list[dict], name: str) -> tuple[float, float]:
    """Mean of the repetitions' estimates and its standard error (independent repetitions)."""
    k = len(rows)
    return (sum(r[f"delta_{name}"] for r in rows) / k,
            math.sqrt(sum(r[f"se_{name}"] ** 2 for r in rows)) / k)


@pytest.fixture(scope="module")
def ntk_rows(models):
    by_role, tokenizer = models
    scorer = NtkScorer(n=64, max_new_tokens=MAX_NEW)
    return [scorer.compare(TwoModelView(by_role, tokenizer, seed))[0] for seed in SEEDS]


@pytest.mark.parametrize("name", ["importance", "mirror", "balanced"])
def test_ntk_estimates_average_to_the_exact_difference(ntk_rows, exact_delta, name):
    mean, se = pooled(ntk_rows, name)
    assert se < abs(exact_delta) / 5, "too few samples for the check to mean anything"
    assert abs(mean - exact_delta) < 3 * se, (name, mean, se, exact_delta)


def test_the_balanced_estimate_is_tighter_than_either_alone(ntk_rows):
    se = {name: pooled(ntk_rows, name)[1] for name in ("importance", "mirror", "balanced")}
    assert se["balanced"] < min(se["importance"], se["mirror"])


def test_the_accuracy_difference_also_averages_to_it(models, exact_delta):
    by_role, tokenizer = models
    scorer = SampledScorer(n=64, max_new_tokens=MAX_NEW)
    rows = [scorer.compare(TwoModelView(by_role, tokenizer, seed))[0] for seed in SEEDS]
    mean, se = sum(r["delta"] for r in rows) / len(rows), math.sqrt(sum(r["se"] ** 2 for r in rows)) / len(rows)
    assert abs(mean - exact_delta) < 3 * se, (mean, se, exact_delta)


def test_the_check_catches_samples_that_do_not_match_the_weights(models, exact_delta):
    """Drawn at temperature 0.7 but weighted as if drawn at 1: biased, and this check says so."""
    by_role, tokenizer = models
    spec = SamplingSpec(n=64, temperature=0.7, max_new_tokens=MAX_NEW)
    fmt = PromptFormat()
    found = []
    for seed in range(10):
        for i, e in enumerate(QUESTIONS):
            prompt = fmt.prompt(e)
            drawn = draw(by_role["control"], tokenizer, prompt, spec, seed * 100 + i)
            lp_l, lp_c = (completion_logprobs(by_role[r], tokenizer, [prompt], [drawn])[0]
                          for r in ("learner", "control"))
            found.append(estimators.importance_sampled([correct(c.text) for c in drawn], lp_l, lp_c))
    total = estimators.mean_over_questions(found)
    assert abs(total.value - exact_delta) > 3 * total.se


class RecordingView(TwoModelView):
    """TwoModelView that lists the stages a scorer records (kind, role, parts)."""

    def __init__(self, models, tokenizer, seed):
        super().__init__(models, tokenizer, seed)
        self.recorded = []

    def record(self, stage, compute):
        self.recorded.append(stage)
        return compute()


def stage_keys(stages) -> list:
    return sorted(stable_hash([s.kind, s.role.key, s.parts]) for s in stages)


@pytest.mark.parametrize("scorer", [NtkScorer(n=4, max_new_tokens=MAX_NEW),
                                    NtkScorer(n=4, max_new_tokens=MAX_NEW, estimates=["importance"]),
                                    NtkScorer(n=4, max_new_tokens=MAX_NEW, estimates=["mirror"]),
                                    SampledScorer(n=4, max_new_tokens=MAX_NEW)],
                         ids=["ntk", "ntk-importance", "ntk-mirror", "sampled"])
def test_the_stages_a_scorer_plans_are_the_stages_it_records(models, scorer):
    """The dry-run plan (stages, which knows the roles only) and a run (compare, which has the view) key the same
    stages, the cell's seed included: the plan reads it from the learner's key, as a cell's roles carry it."""
    by_role, tokenizer = models
    view = RecordingView(by_role, tokenizer, seed=5)
    scorer.compare(view)
    assert stage_keys(view.recorded) == stage_keys(scorer.stages(view.roles))
    assert all(s.parts["seed"] == 5 for s in view.recorded)
    assert stage_keys(scorer.stages(RecordingView(by_role, tokenizer, seed=6).roles)) != stage_keys(view.recorded)


def test_weights_use_the_log_p_recorded_while_drawing(models):
    """No teacher-forced pass of a sampler's completions under the sampler itself: only the other model scores
    them, and the balanced estimate is rebuilt from the recorded log p exactly."""
    by_role, tokenizer = models
    view = RecordingView(by_role, tokenizer, seed=3)
    row, _ = NtkScorer(n=8, max_new_tokens=MAX_NEW).compare(view)
    scorings = [s for s in view.recorded if s.kind == "sample-logps"]
    assert sorted((s.parts["sampler"]["role"], s.role.name) for s in scorings) == [("control", "learner"),
                                                                                  ("learner", "control")]
    drawn = {r: samples(view, NtkScorer(n=8, max_new_tokens=MAX_NEW).spec, getattr(view.roles, r))
             for r in ("control", "learner")}
    fmt, per_question = PromptFormat(), []
    for i, e in enumerate(QUESTIONS):
        sets = {}
        for sampler, other in (("control", "learner"), ("learner", "control")):
            completions = drawn[sampler][i]["completions"]
            own = [c["logp"] for c in completions]
            cross = completion_logprobs(by_role[other], tokenizer, [fmt.prompt(e)],
                                        [[Completion(tuple(c["tokens"]), c["text"], c["end"], c["logp"])
                                          for c in completions]])[0]
            lp_l, lp_c = (own, cross) if sampler == "learner" else (cross, own)
            sets[sampler] = ([c["correct"] for c in completions], lp_l, lp_c)
        per_question.append(estimators.balanced(sets["control"], sets["learner"]))
    assert row["estimate"] == "balanced"
    assert row["delta"] == row["delta_balanced"] == pytest.approx(estimators.mean_over_questions(per_question).value,
                                                                  abs=1e-12)


def test_rows_flag_questions_whose_control_drew_at_most_one_correct_sample(models):
    by_role, tokenizer = models
    row, questions = NtkScorer(n=2, max_new_tokens=MAX_NEW).compare(TwoModelView(by_role, tokenizer, seed=0))
    row_many, questions_many = NtkScorer(n=64, max_new_tokens=MAX_NEW).compare(TwoModelView(by_role, tokenizer,
                                                                                           seed=0))
    for r, qs, n in ((row, questions, 2), (row_many, questions_many, 64)):
        assert r["sparse_control"] == sum(q["sparse_control"] for q in qs)
        for q in qs:
            assert q["sparse_control"] == (round(q["acc_control"] * n) <= 1)
    # p_control(correct) is about 0.18 here: 2 samples are almost always sparse (97%), 64 almost never (1e-5)
    assert row["sparse_control"] >= 1 and row_many["sparse_control"] == 0
