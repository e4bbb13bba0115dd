"""Cells run in turn in one process share the loaded model (ntkeval.backends.session_pool): one load for a row of
cells, the same numbers as cells that each load the model afresh, and a model that a cell changed is not shared."""

import json

import pytest

from ntkeval.backends import session_pool
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.scorers.ntk import NtkScorer
from ntkeval.tracking.base import NullTracker

TESTS = ["add/question", "mul/question"]


class CountingTiny(TinyModel):
    loads = 0

    def load(self, device="cpu"):
        CountingTiny.loads += 1
        return super().load(device)


def learners():
    """tune-skill trains its control tune-base too: two adapters on the shared model, then an in-context cell."""
    return [LoraLearner(name="tune-skill", answers="correct", steps=3, batch_size=4, lr=1e-2),
            InContextLearner(name="icl-skill", demos=2, source="skill")]


def cell(tmp_path, learner, cache, scorer, model=None) -> Cell:
    return Cell(model=model or CountingTiny(name="tiny", arch="llama"), learner=learner,
                dataset=ArithDataset(seed=0, n_train=8, n_test=4), train_skill="add/question", test_skills=TESTS,
                scorer=scorer, fmt=PromptFormat(), seed=0, cache=StageCache(cache), out_dir=tmp_path / learner.name)


def rows(result: dict) -> list[dict]:
    return [{k: v for k, v in row.items()} for row in result["tests"]]


@pytest.mark.parametrize("scorer", [ExactScorer(batch_size=4), NtkScorer(n=2, max_new_tokens=2)],
                         ids=["exact", "ntk"])
def test_a_row_of_cells_loads_once_and_gives_the_numbers_of_fresh_loads(tmp_path, scorer):
    """Two cells (a tuning with two adapters, then in-context) in one process: one load; every kernel row equals,
    to the last bit, the row of the same cell run with a fresh model and an empty cache of its own."""
    CountingTiny.loads = 0
    shared = [run_cell(cell(tmp_path / "shared", lrn, tmp_path / "c1", scorer), NullTracker()) for lrn in learners()]
    assert CountingTiny.loads == 1
    for index, learner in enumerate(learners()):
        session_pool.release()
        CountingTiny.loads = 0
        alone = run_cell(cell(tmp_path / f"alone{index}", learner, tmp_path / f"c-alone{index}", scorer),
                         NullTracker())
        assert CountingTiny.loads == 1
        assert json.dumps(rows(alone)) == json.dumps(rows(shared[index])), learner.name


def test_another_model_frees_the_kept_one_and_a_changed_model_is_not_kept(tmp_path):
    scorer = ExactScorer(batch_size=4)
    icl = InContextLearner(name="icl-skill", demos=2, source="skill")
    CountingTiny.loads = 0
    run_cell(cell(tmp_path / "a", icl, tmp_path / "c", scorer), NullTracker())
    run_cell(cell(tmp_path / "b", icl, tmp_path / "c2", scorer, CountingTiny(name="tiny", arch="mistral")),
             NullTracker())
    assert CountingTiny.loads == 2 and len(session_pool._kept) == 1  # only the mistral one is kept
    (session,) = session_pool._kept.values()
    session.model.generation_config.max_new_tokens = 999  # what a cell must not leave behind
    run_cell(cell(tmp_path / "c", icl, tmp_path / "c3", scorer, CountingTiny(name="tiny", arch="mistral")),
             NullTracker())
    assert CountingTiny.loads == 2  # it was reused for that cell (the change is caught when it is put back)...
    assert not session_pool._kept  # ...and dropped afterwards, so the next cell loads a clean model
    run_cell(cell(tmp_path / "d", icl, tmp_path / "c4", scorer, CountingTiny(name="tiny", arch="mistral")),
             NullTracker())
    assert CountingTiny.loads == 3


def test_a_failed_cell_leaves_no_adapter_behind(tmp_path, monkeypatch):
    """A cell that fails after adding an adapter: the kept model has none (the next cell scores the base model)."""
    from ntkeval.backends.huggingface import session as session_module

    def broken(*args, **kwargs):
        raise RuntimeError("training broke")

    monkeypatch.setattr(session_module, "train_lora", broken)
    with pytest.raises(RuntimeError, match="training broke"):
        run_cell(cell(tmp_path / "a", learners()[0], tmp_path / "c", ExactScorer(batch_size=4)), NullTracker())
    (session,) = session_pool._kept.values()
    assert session._peft is None and not session._adapters
    assert not any("lora_" in name for name, _ in session.model.named_modules())
    assert all(p.requires_grad for p in session.model.parameters())


def test_a_grpo_cell_leaves_the_model_as_loaded_for_the_next_cell(tmp_path):
    """TRL's trainer turns the model's key/value cache off for training; the session turns it back on, so a row
    with tune-rl in it still loads the model once."""
    from test_rl import learner as rl_learner

    CountingTiny.loads = 0
    scorer = ExactScorer(batch_size=4)
    run_cell(cell(tmp_path / "rl", rl_learner(), tmp_path / "c", scorer), NullTracker())
    (session,) = session_pool._kept.values()
    assert session.model.config.use_cache is True
    run_cell(cell(tmp_path / "icl", InContextLearner(name="icl-skill", demos=2, source="skill"), tmp_path / "c",
                  scorer), NullTracker())
    assert CountingTiny.loads == 1
