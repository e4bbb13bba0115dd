"""One cell of a sweep, top to bottom: adapt a model to one train skill, score every test skill under the untouched
model, the learner and its control, and write the kernel row (result.json + questions.jsonl) and its W&B mirror."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ntkeval
from ntkeval.cache import StageCache, atomic_write_text, stable_hash
from ntkeval.kernel import paired_delta
from ntkeval.learners import Adaptation, AdaptContext
from ntkeval.prompts import PromptFormat
from ntkeval.session import ModelSession

log = logging.getLogger(__name__)
SCORES = "scores"  # the stage-cache kind of per-question scores


@dataclass
class Cell:
    model: Any            # a loader from conf/model
    learner: Any          # a learner from conf/learner
    dataset: Any          # a data set from conf/dataset
    train_skill: str
    test_skills: list[str]
    scorer: Any           # from conf/scorer
    fmt: PromptFormat
    seed: int
    cache: StageCache
    out_dir: Path
    device: str = "cpu"
    config: dict = field(default_factory=dict)  # the resolved config, recorded with the results

    def identity(self) -> dict:
        control = self.learner.control()
        return {"model": self.model.name, "learner": self.learner.name,
                "control": control.name if control else "base", "dataset": self.dataset.name,
                "train_skill": self.train_skill, "seed": self.seed}

    def cell_id(self) -> str:
        """Derived from everything that determines the cell's numbers: rerunning a cell finds the same id."""
        return stable_hash({"model": self.model.identity(), "dataset": self.dataset.identity(),
                            "learner": self.learner.key(self.train_skill, self.seed), "tests": self.test_skills,
                            "format": self.fmt.identity(), "scorer": self.scorer.identity()})

    def context(self, session=None) -> AdaptContext:
        return AdaptContext(dataset=self.dataset, train_skill=self.train_skill, seed=self.seed, fmt=self.fmt,
                            cache=self.cache, model_key=self.model.identity(), session=session)

    def score_parts(self, learner, test_skill: str) -> dict:
        """What determines the scores of `test_skill` under `learner` (None: the untouched model): the cache key."""
        return {"model": self.model.identity(), "dataset": self.dataset.identity(), "format": self.fmt.identity(),
                "scorer": self.scorer.identity(), "test_skill": test_skill,
                "adaptation": None if learner is None else learner.key(self.train_skill, self.seed)}

    def roles(self) -> list:
        """The learners whose scores the cell needs: the untouched model (None), the control, the learner."""
        control = self.learner.control()
        return [None] + ([control] if control is not None else []) + [self.learner]


class _Stages:
    """Adaptations and scores of one cell, each computed only when the stage cache does not already hold it."""

    def __init__(self, cell: Cell):
        self.cell = cell
        self.session = ModelSession(cell.model, cell.device)
        self.context = cell.context(self.session)
        self.adaptations: dict[str, Adaptation] = {}

    def adaptation(self, learner) -> Adaptation:
        """The learner's adaptation (a prefix or an adapter on disk); cheap when the stage cache holds it."""
        if learner.name not in self.adaptations:
            self.adaptations[learner.name] = learner.adapt(self.context)
        return self.adaptations[learner.name]

    def scores(self, learner, test_skill: str) -> list[dict]:
        """Per-question scores of `test_skill` under `learner` (None: the untouched model), cached by content."""
        c = self.cell
        parts = c.score_parts(learner, test_skill)

        def compute() -> list[dict]:
            adapted = Adaptation() if learner is None else self.adaptation(learner)
            adapter = None
            if adapted.adapter_dir is not None:
                adapter = learner.name
                self.session.load_adapter(adapter, adapted.adapter_dir)
            name = "base" if learner is None else learner.name
            with self.session.using(adapter) as model:
                return c.scorer.score(model, self.session.tokenizer, c.dataset.test(test_skill), c.fmt,
                                      adapted.prefix, desc=f"scoring {test_skill} under {name}")

        return c.cache.record(SCORES, parts, compute)


def kernel_row(test_skill: str, base: list[dict], control: list[dict], learner: list[dict], seed: int) -> dict:
    """The summary of one (train, test) pair: mean probabilities, the paired delta with its CI, greedy accuracies."""
    d = paired_delta([r["p"] for r in learner], [r["p"] for r in control], seed=seed)
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {"test_skill": test_skill, "n": d.n, "p_learner": mean(learner, "p"), "p_control": mean(control, "p"),
            "p_base": mean(base, "p"), "delta": d.delta, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "acc_learner": mean(learner, "greedy"), "acc_control": mean(control, "greedy"),
            "acc_base": mean(base, "greedy")}


def question_rows(test_skill: str, examples, base, control, learner) -> list[dict]:
    return [{"id": e.id, "test_skill": test_skill, "question": e.question, "answer": e.answer,
             "logp_learner": lr["logp"], "logp_control": cr["logp"], "logp_base": br["logp"],
             "p_learner": lr["p"], "p_control": cr["p"], "p_base": br["p"],
             "greedy_learner": lr["greedy"], "greedy_control": cr["greedy"], "greedy_base": br["greedy"]}
            for e, br, cr, lr in zip(examples, base, control, learner)]


def run_cell(cell: Cell, tracker) -> dict:
    """Run one cell and return its result (also written to cell.out_dir/result.json)."""
    stages = _Stages(cell)
    control = cell.learner.control()
    rows, questions = [], []
    for skill in cell.test_skills:
        base = stages.scores(None, skill)
        ctrl = base if control is None else stages.scores(control, skill)
        learned = stages.scores(cell.learner, skill)
        rows.append(kernel_row(skill, base, ctrl, learned, cell.seed))
        questions += question_rows(skill, cell.dataset.test(skill), base, ctrl, learned)
        log.info("%s -> %s: delta %+.4f [%+.4f, %+.4f]", cell.train_skill, skill, rows[-1]["delta"],
                 rows[-1]["ci_low"], rows[-1]["ci_high"])
    computed, cached = sum(cell.cache.misses.values()), sum(cell.cache.hits.values())
    log.info("stages: %d computed, %d from the cache%s", computed, cached, "" if computed else " (nothing recomputed)")
    result = {"status": "done", "cell": {"cell_id": cell.cell_id(), **cell.identity(), "code_version": code_version()},
              "tests": rows, "error": None, "log": None, "cache": {"hits": cell.cache.hits, "misses": cell.cache.misses},
              "config": cell.config}
    cell.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.out_dir / "questions.jsonl", "".join(json.dumps(q) + "\n" for q in questions))
    atomic_write_text(cell.out_dir / "result.json", json.dumps(result, indent=1))
    mirror_to_tracker(tracker, result, questions, stages)
    return result


def mirror_to_tracker(tracker, result: dict, questions: list[dict], stages: _Stages) -> None:
    """W&B mirrors what is on disk: the loss curve of a tuned learner, the kernel row, the per-question table."""
    loss = stages.adaptation(stages.cell.learner).loss  # a cache hit when the cell's scores were computed
    for step, value in enumerate(loss):
        tracker.log({"train/loss": value}, step=step)
    summary = {f"{r['test_skill']}/{k}": v for r in result["tests"] for k, v in r.items() if k != "test_skill"}
    summary["delta_mean"] = sum(r["delta"] for r in result["tests"]) / len(result["tests"])
    tracker.summary(summary)
    if questions:
        columns = list(questions[0])
        tracker.table("questions", columns, [[q[c] for c in columns] for q in questions])


def code_version() -> str:
    """The package version plus the git commit of the source tree when there is one."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{ntkeval.__version__}+g{sha}" if sha else ntkeval.__version__


def failed_result(cell: Cell, error: BaseException, log_file: Path) -> None:
    """Record a failed cell on disk (first error line and log path), so reports name it instead of losing it."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    result = {"status": "failed", "cell": {"cell_id": cell.cell_id(), **cell.identity(),
                                           "code_version": code_version()},
              "tests": [], "error": f"{type(error).__name__}: {first}", "log": str(log_file), "config": cell.config}
    log.error("cell failed: %s (log: %s)", result["error"], log_file)
    cell.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.out_dir / "result.json", json.dumps(result, indent=1))
