"""tune-augment and the arith augmentations behind it: hand-checked rephrasings, FOBAR backward questions and extra
worked solutions, their distinctness and train-side split, the exact mix at plain tuning's budget, the control's
texts, tiny-model cells in the direct and cot formats, and the preflight's one-line refusals."""

from __future__ import annotations

import random

import pytest

from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data import arith_augment
from ntkeval.data.arith import ALL_FORMATS, ArithDataset, split_of
from ntkeval.data.arith_solutions import steps_correct
from ntkeval.errors import UserError
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import CotFormat
from ntkeval.learners.augment import AugmentedLearner
from ntkeval.learners.base import AdaptContext
from ntkeval.preflight import check_command_line
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.tracking.base import NullTracker
from tests.test_split_leaks import signature

FORWARD = [f"{op}/{fmt}" for op in ("add", "sub", "mul", "div", "ops", "cplex")
           for fmt in ("question", "instruction", "symbol", "word")]


def steps(solution) -> list[tuple[str, str]]:
    return [(s.expression, s.value) for s in solution.steps]


def written(solution) -> tuple[str, ...]:
    return tuple(f"{s.expression} = {s.value}" for s in solution.steps)


@pytest.fixture(scope="module")
def data():
    return ArithDataset(seed=0, n_train=8, n_test=4)


def test_hand_checked_augmentations_of_one_addition(data):
    example = data.train("add/question")[0]
    assert (example.question, example.answer) == ("What is 82+77?", "159")
    rephrased = data.augment(example, "rephrase", 3, random.Random(0))
    assert [(a.example.skill, a.example.question, a.example.answer) for a in rephrased] == [
        ("add/instruction", "Compute 82 + 77.", "159"), ("add/symbol", "82+77=", "159"),
        ("add/word", "Zoe has 82 beads and gets 77 more. How many beads does Zoe have now?", "159")]
    assert all(steps(a.solution) == [("82 + 77", "159")] for a in rephrased)
    backward = data.augment(example, "backward", 5, random.Random(0))
    assert [(a.example.question, a.example.answer, steps(a.solution)) for a in backward] == [
        ("x + 77 = 159. What is x?", "82", [("159 - 77", "82")]),
        ("82 + x = 159. What is x?", "77", [("159 - 82", "77")])]
    answers = data.augment(example, "answers", 5, random.Random(0))  # only the commuted sum: one other solution
    assert [(a.example.question, steps(a.solution)) for a in answers] == [("What is 82+77?", [("77 + 82", "159")])]
    assert {a.source for a in rephrased + backward + answers} == {example.id}
    assert data.augment(example, "rephrase", 1, random.Random(0))[0].example.question == "Compute 82 + 77."  # n caps


def test_a_word_problem_is_turned_around_in_metamath_s_fobar_wording(data):
    example = data.train("sub/word")[0]
    (first, *_), = [data.augment(example, "backward", 1, random.Random(0))]
    assert first.example.question == (
        "Amara needs X points to win and already has 74. How many more points does Amara need? If we know the answer "
        "to the above question is 13, what is the value of unknown variable X?")
    assert first.example.answer == "87" and steps(first.solution) == [("13 + 74", "87")]


def test_other_worked_solutions_distribute_reorder_and_commute(data):
    example = data.train("ops/word")[0]
    assert data.expression(example) == "(19-1)*5"
    answers = data.augment(example, "answers", 3, random.Random(0))
    assert [steps(a.solution) for a in answers] == [
        [("19 * 5", "95"), ("1 * 5", "5"), ("95 - 5", "90")],   # distributed: 19*5 - 1*5
        [("1 * 5", "5"), ("19 * 5", "95"), ("95 - 5", "90")],   # the same, the independent products swapped
        [("19 - 1", "18"), ("5 * 18", "90")]]                   # commuted
    assert data.augment(data.train("sub/question")[0], "answers", 5, random.Random(0)) == []  # a-b: one solution


@pytest.mark.parametrize("skill", FORWARD)
def test_extra_solutions_are_distinct_correct_and_of_the_same_question(data, skill):
    for example in data.train(skill):
        answers = data.augment(example, "answers", 16, random.Random(1))
        lists = [written(a.solution) for a in answers] + [written(data.solution(example))]
        assert len(set(lists)) == len(lists)  # distinct equation lists, none the canonical one
        for item in answers:
            assert (item.example.question, item.example.answer, item.example.skill) == (
                example.question, example.answer, skill)
            assert steps_correct(example.question, example.answer, written(item.solution))
            assert item.solution.answer == example.answer != item.wrong.answer
            assert len(item.wrong.steps) == len(item.solution.steps)
        for kind in ("rephrase", "backward"):
            for item in data.augment(example, kind, 16, random.Random(1)):
                assert steps_correct(item.example.question, item.example.answer, written(item.solution))
                assert item.wrong.answer != item.example.answer


def test_no_augmented_question_is_a_test_problem_in_any_surface():
    for seed in (0, 1):
        data = ArithDataset(seed=seed, n_train=16, n_test=16, formats=ALL_FORMATS)  # backward tests too
        tests = {signature(e) for skill in data.skills() for e in data.test(skill)}
        made = [a for skill in FORWARD for e in data.train(skill) for kind in ("rephrase", "backward", "answers")
                for a in data.augment(e, kind, 16, random.Random(seed))]
        assert len(made) > 1000
        assert all(split_of(a.example.question) == "train" for a in made)
        assert not [a.example.question for a in made if signature(a.example) in tests]


def test_the_split_guard_is_what_drops_test_side_backward_questions(monkeypatch):
    data = ArithDataset(seed=0, n_train=16, n_test=4)
    kept = sum(len(data.augment(e, "backward", 16, random.Random(0))) for e in data.train("ops/question"))
    monkeypatch.setattr(arith_augment, "_train_side", lambda gen, question: True)
    unguarded = [a for e in data.train("ops/question") for a in data.augment(e, "backward", 16, random.Random(0))]
    assert len(unguarded) > kept  # some FOBAR questions show numbers of the test side: the guard dropped them
    assert any(split_of(a.example.question) == "test" for a in unguarded)


def context(data, skill="add/question", answer_format=None, seed=0, tmp_path=None):
    return AdaptContext(dataset=data, train_skill=skill, seed=seed, fmt=PromptFormat(), model_key={},
                        cache=StageCache(tmp_path), format=answer_format or DirectFormat())


def kinds(learner, data, skill, seed=0):
    items = learner.mix(data, skill, seed)
    return [item.kind for item in items], items


def test_the_mix_holds_plain_tuning_s_budget_in_equal_shares(data, tmp_path):
    learner = AugmentedLearner(augment=["rephrase", "backward", "answers"])
    got, items = kinds(learner, data, "add/question")
    assert got == ["original"] * 2 + ["answers"] * 2 + ["backward"] * 2 + ["rephrase"] * 2  # 8 = 4 shares of 2
    for kind in ("original", "answers", "backward", "rephrase"):  # one per question before a second
        assert len({item.source for item in items if item.kind == kind}) == 2
    ten, _ = kinds(AugmentedLearner(augment=["rephrase", "backward"], n_texts=10), data, "add/question")
    assert ten == ["original"] * 4 + ["backward"] * 3 + ["rephrase"] * 3  # 10 // 3 = 3, the remainder to original
    short, _ = kinds(AugmentedLearner(augment=["backward", "answers"], n_texts=9), data, "sub/question")
    assert short == ["original"] * 6 + ["backward"] * 3  # a-b has no other solution: answers' 3 go to original
    assert kinds(learner, data, "add/question") == kinds(learner, data, "add/question")  # deterministic
    assert kinds(learner, data, "add/question", seed=1)[1] != items  # and seeded
    texts = learner.training_texts(context(data, tmp_path=tmp_path))
    assert len(texts) == len(data.train("add/question")) == 8


def test_n_texts_beyond_what_the_pools_hold_is_refused(data):
    # mul/question: 8 originals and one commuted product each, except 9*9 (9 * 9 again is no other solution): 15
    assert [e.question for e in data.train("mul/question")][:2] == ["What is 21*4?", "What is 9*9?"]
    AugmentedLearner(augment=["answers"], n_texts=15).validate_format(DirectFormat(), data, "mul/question")
    with pytest.raises(UserError, match=r"learner.n_texts=16 is invalid; mul/question gives at most 15 texts"):
        AugmentedLearner(augment=["answers"], n_texts=16).validate_format(DirectFormat(), data, "mul/question")


@pytest.mark.parametrize("answer_format", [DirectFormat(), CotFormat()], ids=["direct", "cot"])
def test_the_control_tunes_on_the_same_mix_with_wrong_answers_of_the_same_form(data, tmp_path, answer_format):
    learner = AugmentedLearner(augment=["backward", "rephrase"])
    control = learner.control()
    assert (control.name, control.answers, control.augment) == ("tune-augment-base", "random", learner.augment)
    right = learner.training_texts(context(data, answer_format=answer_format, tmp_path=tmp_path))
    wrong = control.training_texts(context(data, answer_format=answer_format, tmp_path=tmp_path))
    assert [p for p, _ in right] == [p for p, _ in wrong]
    assert all(a != b and a.count("\n") == b.count("\n") for (_, a), (_, b) in zip(right, wrong))
    items = learner.mix(data, "add/question", 0)
    backward = next(i for i, item in enumerate(items) if item.kind == "backward")
    question = items[backward].example.question
    assert right[backward][0] == PromptFormat().prompt(items[backward].example) and question.endswith("What is x?")
    if answer_format.reasoning:  # the augmented item's own worked solution, written in the cell's format
        assert right[backward][1].strip().startswith(f"1. {items[backward].solution.steps[0].expression} = ")
        assert f"The answer is {items[backward].example.answer}." in right[backward][1]
    else:
        assert right[backward][1].strip() == items[backward].example.answer


def test_the_key_holds_the_augmentations_as_a_set_and_the_budget():
    a = AugmentedLearner(augment=["rephrase", "backward"], target_modules=["q_proj"])
    b = AugmentedLearner(augment=["backward", "rephrase"], target_modules=["q_proj"])
    assert a.key("add/question", 0) == b.key("add/question", 0)
    assert a.key("add/question", 0)["augment"] == ["backward", "rephrase"]
    c = AugmentedLearner(augment=["backward", "rephrase"], n_texts=12, target_modules=["q_proj"])
    d = AugmentedLearner(augment=["backward"], target_modules=["q_proj"])
    assert len({str(x.key("add/question", 0)) for x in (a, c, d)}) == 3


def test_bad_augmentations_are_one_line_errors(data):
    with pytest.raises(UserError, match=r"unknown augmentation \(learner.augment\) 'paraphrase'; valid choices: "
                                        r"rephrase, backward, answers"):
        AugmentedLearner(augment=["paraphrase"])
    with pytest.raises(UserError, match="non-empty list of distinct augmentations"):
        AugmentedLearner(augment=["backward", "backward"])
    backward = ArithDataset(n_train=2, n_test=2, formats=("question", "backward"))
    with pytest.raises(UserError, match=r"learner.augment=\[rephrase\]: arith cannot make rephrase from the "
                                        r"backward skill 'add/backward'"):
        AugmentedLearner(augment=["rephrase"]).validate_format(DirectFormat(), backward, "add/backward")
    AugmentedLearner(augment=["answers"]).validate_format(DirectFormat(), backward, "add/backward")


def _cell(tmp_path, learner, answer_format, scorer):
    return Cell(model=TinyModel(name="tiny"), learner=learner, dataset=ArithDataset(n_train=8, n_test=2),
                train_skill="ops/question", test_skills=["ops/question", "add/word"], scorer=scorer,
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "cache"), out_dir=tmp_path / "cell",
                format=answer_format)


@pytest.mark.parametrize("answer_format,scorer", [
    (DirectFormat(), ExactScorer(batch_size=4)),
    (CotFormat(), SampledScorer(n=2, max_new_tokens=8))], ids=["direct", "cot"])
def test_a_tiny_model_cell_tunes_both_and_records_the_mix(tmp_path, answer_format, scorer):
    learner = AugmentedLearner(steps=2, batch_size=4, lr=1e-2)
    result = run_cell(_cell(tmp_path, learner, answer_format, scorer), NullTracker())
    assert result["status"] == "done" and result["cell"]["control"] == "tune-augment-base"
    assert [r["test_skill"] for r in result["tests"]] == ["ops/question", "add/word"]
    for name in ("tune-augment", "tune-augment-base"):
        record = result["adaptation"][name]
        assert record["info"] == {"texts": 8, "texts_original": 2, "texts_answers": 2, "texts_backward": 2,
                                  "texts_rephrase": 2}
        assert [row[0] for row in record["tables"]["augmented_texts"]["rows"]] == [
            "original", "original", "answers", "answers", "backward", "backward", "rephrase", "rephrase"]
    again = AugmentedLearner(steps=2, batch_size=4, lr=1e-2)  # a rerun reads the record from the cache
    rerun = run_cell(_cell(tmp_path, again, answer_format, scorer), NullTracker())
    assert rerun["adaptation"] == result["adaptation"]


def test_the_command_line_refuses_augmentations_a_data_set_cannot_make(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        check_command_line(["learner=tune-augment", "dataset=khanskill", "pair.train=fractions/simplify-fraction",
                            "pair.test=[fractions/simplify-fraction]"])
    line = str(raised.value)
    assert "learner.augment=[answers, backward, rephrase]: data set 'khanskill' cannot make answers" in line
    assert "(arith)" in line and "\n" not in line
    with pytest.raises(UserError, match=r"unknown augmentation \(learner.augment\) 'foo'; valid choices"):
        check_command_line(["learner=tune-augment", "learner.augment=[rephrase,foo]"])
    assert not list(tmp_path.iterdir())
    with pytest.raises(UserError, match=r"^learner.n_texts=100000 is invalid; add/question gives at most \d+ texts"):
        check_command_line(["learner=tune-augment", "learner.n_texts=100000", "pair.test=[add/question]"])


@pytest.mark.parametrize("path,other", [("learner.augment", ["backward", "rephrase"]), ("learner.n_texts", 5)])
def test_its_own_settings_change_the_cell_id_and_both_adapters_keys(compose_config, tmp_path, path, other):
    """tests/test_cache_keys.py perturbs a list by reversing it (the same set here, rightly the same key) and finds
    no valid perturbation of null; these are the perturbations it cannot make."""
    import copy

    from omegaconf import OmegaConf, open_dict

    from tests.test_cache_keys import fingerprint

    cfg = compose_config("learner=tune-augment", "pair.test=[add/question]", "model=tiny")
    with open_dict(cfg):
        del cfg["hydra"]  # resolved only inside a running Hydra job, as test_cache_keys does
    changed = copy.deepcopy(cfg)
    OmegaConf.update(changed, path, other, merge=False)
    (cell, config, keys), (cell2, config2, keys2) = fingerprint(cfg, tmp_path), fingerprint(changed, tmp_path)
    assert cell != cell2 and config != config2 and len(keys - keys2) >= 2  # the learner's and its control's adapters
    reordered = copy.deepcopy(cfg)
    OmegaConf.update(reordered, "learner.augment", ["answers", "rephrase", "backward"], merge=False)
    assert fingerprint(reordered, tmp_path) == (cell, config, keys)  # a set: the order is no setting
