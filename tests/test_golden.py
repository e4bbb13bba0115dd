"""Golden numbers: one tiny seeded cell per learner and scorer, composed from the real configs, with every number of
its kernel rows and question rows (log-probabilities, sampled answers) frozen to 1e-6 and its cell id and config_id frozen exactly. A refactor that changes a number (or a
cache key, which would silently orphan users' caches) fails here.

Regenerate only for a deliberate change of numbers or keys, and say why in the commit:
    NTKEVAL_FREEZE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""

import json
import math
import os
from pathlib import Path

import pytest
from omegaconf import open_dict

from ntkeval.build import build_cell
from ntkeval.cell import run_cell
from ntkeval.tracking.base import NullTracker

GOLDEN = Path(__file__).parent / "golden" / "cells.json"
SMALL = ["dataset.n_train=8", "dataset.n_test=4", "dataset.max_operand=9", "pair.train=add/question", "pair.test=[add/question,mul/symbol]",
         "learner.demos=2", "tuning.steps=6", "tuning.batch_size=4", "tuning.lr=5e-2", "scorer.n=12",
         "scorer.max_new_tokens=4", "logger=none", "device=cpu",
         "model.initializer_range=0.3"]  # peaked predictions: probabilities far from 0, so 1e-6 is a real tolerance
# (model, learner, scorer): every learner under every scorer that serves it (ntk needs a learner with a control),
# and the byte-level tokenizer without BOS under the exact scorer.
CELLS = [("tiny", learner, scorer) for scorer in ("exact", "sampled")
         for learner in ("icl-standard", "icl-skill", "tune-base", "tune-skill")]
CELLS += [("tiny", "icl-skill", "ntk"), ("tiny", "tune-skill", "ntk"), ("tiny-mistral", "icl-skill", "exact")]


def overrides(model: str, learner: str, scorer: str) -> list[str]:
    small = [o for o in SMALL if not (o.startswith("learner.demos") and learner.startswith("tune"))
             and not (o.startswith("scorer.") and scorer == "exact")]
    return [f"model={model}", f"learner={learner}", f"scorer={scorer}", *small]


def run(compose_config, tmp_path: Path, model: str, learner: str, scorer: str) -> dict:
    cfg = compose_config(*overrides(model, learner, scorer))
    with open_dict(cfg):
        del cfg["hydra"]  # the job's runtime dirs: resolved only inside a running Hydra job
    cell = build_cell(cfg, tmp_path / f"{model}-{learner}-{scorer}")
    result = run_cell(cell, NullTracker())
    questions = [json.loads(line) for line in (cell.out_dir / "questions.jsonl").read_text().splitlines()]
    return {"cell_id": result["cell"]["cell_id"], "config_id": result["cell"]["config_id"], "tests": result["tests"],
            "questions": questions}


def numbers_match(got, want, where: str) -> list[str]:
    """Every difference between two rows: numbers beyond 1e-6 (NaN equals NaN), anything else not equal."""
    if isinstance(want, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in want for d in numbers_match(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} entries, want {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in numbers_match(g, w, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)):
        if math.isnan(want) and math.isnan(got) or math.isclose(got, want, rel_tol=0, abs_tol=1e-6) or got == want:
            return []
        return [f"{where}: {got!r}, want {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, want {want!r}"]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("model,learner,scorer", CELLS, ids=["-".join(c) for c in CELLS])
def test_golden_numbers(compose_config, tmp_path, golden, model, learner, scorer):
    name = f"{model}/{learner}/{scorer}"
    got = run(compose_config, tmp_path, model, learner, scorer)
    if os.environ.get("NTKEVAL_FREEZE_GOLDEN") == "1":
        frozen = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        frozen[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(frozen, indent=1, sort_keys=True) + "\n")
        pytest.skip("froze the golden numbers")
    assert name in golden, f"no golden numbers for {name}: freeze them (see this module's docstring)"
    differences = numbers_match(json.loads(json.dumps(got)), golden[name], name)
    assert not differences, "\n".join(differences)


def test_the_comparison_sees_a_change_beyond_the_tolerance():
    row = {"delta": 0.125, "n": 4, "test_skill": "add/question", "ci": [0.1, float("nan")]}
    assert numbers_match(json.loads(json.dumps(row)), row, "r") == []
    assert numbers_match({**row, "delta": 0.125 + 2e-6}, row, "r") == ["r.delta: 0.125002, want 0.125"]
    assert numbers_match({**row, "delta": 0.125 + 5e-7}, row, "r") == []
    assert numbers_match({**row, "test_skill": "mul/symbol"}, row, "r")
    assert numbers_match({**row, "extra": 1}, row, "r")
