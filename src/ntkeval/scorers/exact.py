"""The exact scorer: p(correct | prompt) by teacher forcing the canonical answer and its delimiter, under each role;
the kernel entry is the paired mean difference learner - control with a bootstrap interval over questions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ntkeval.backends.base import SCORING_RULE_VERSION, LanguageModel
from ntkeval.cache import Checked
from ntkeval.data.base import Example
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.base import Roles, Stage
from ntkeval.stats.intervals import paired_delta

SCORES = "scores"  # the stage-cache kind of per-question exact scores


@dataclass
class ExactScorer:
    batch_size: int = 16       # sequences per forward pass; results do not depend on it
    reuse_prefix: bool = True  # encode shared demonstrations once; results do not depend on it

    def identity(self) -> dict:
        return {"name": "exact", "rule": SCORING_RULE_VERSION}

    def validate(self, learner) -> None:
        """Every learner can be scored exactly."""

    def score(self, lm: LanguageModel, examples: list[Example], fmt: PromptFormat, prefix: str = "",
              desc: str = "scoring") -> list[dict]:
        """Per-question rows: id, logp, p (= exp logp), greedy (0/1), n_tokens."""
        requests = [(fmt.prompt(e, prefix), fmt.target(e.answer)) for e in examples]
        scores = lm.score(requests, self.batch_size, reuse_prefix=bool(prefix) and self.reuse_prefix, desc=desc)
        return [{"id": e.id, "logp": s.logprob, "p": math.exp(s.logprob), "greedy": int(s.greedy),
                 "n_tokens": s.n_tokens} for e, s in zip(examples, scores)]

    def stages(self, roles: Roles) -> list[Stage]:
        return [Stage(SCORES, role, {"scorer": self.identity()})
                for role in roles.distinct(roles.base, roles.control, roles.learner)]

    def compare(self, view) -> tuple[dict, list[dict]]:
        scores = {}
        for stage in self.stages(view.roles):
            def compute(role=stage.role):
                with view.open(role) as (lm, prefix):
                    return self.score(lm, view.examples, view.fmt, prefix,
                                      desc=f"scoring {view.test_skill} under {role.name}")
            scores[stage.role.id] = view.record(stage, Checked(compute, scores_problem(view.examples)))
        roles = view.roles
        base, control, learner = (scores[r.id] for r in (roles.base, roles.control, roles.learner))
        return (kernel_row(view.test_skill, base, control, learner, view.seed),
                question_rows(view.test_skill, view.examples, base, control, learner))


def scores_problem(examples: list[Example]):
    """The check a cached scores record must pass: one row per question, in order, with a finite log p <= 0,
    p = exp(log p) and a 0/1 greedy flag; anything else (an older layout, other questions) is rebuilt, not used."""
    def row_problem(i: int, row: dict) -> str | None:
        logp = row.get("logp")
        if not _number(logp) or not math.isfinite(logp) or logp > 0:
            return f"row {i} has logp {logp!r}, not a finite log-probability"
        if not _number(row.get("p")) or row["p"] != math.exp(logp):
            return f"row {i} has p {row.get('p')!r}, not exp(logp)"
        if row.get("greedy") not in (0, 1) or isinstance(row.get("greedy"), bool):
            return f"row {i} has greedy {row.get('greedy')!r}, not 0 or 1"
        return None

    return per_question_problem(examples, row_problem)


def per_question_problem(examples: list[Example], row_problem):
    """The check of a cached per-question record: a list of one dict per question, in the questions' order, each
    with its question's id, and each passing row_problem(i, row) (None, or what is wrong with row i)."""
    ids = [e.id for e in examples]

    def problem(rows) -> str | None:
        if not isinstance(rows, list) or len(rows) != len(ids):
            return f"expected a list of {len(ids)} rows, one per question"
        for i, (row, id_) in enumerate(zip(rows, ids)):
            if not isinstance(row, dict) or row.get("id") != id_:
                return f"row {i} is not question {id_!r}"
            found = row_problem(i, row)
            if found:
                return found
        return None

    return problem


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
             "p_learner": lr["p"], "p_control": cr["p"], "p_base": br["p"], "delta": lr["p"] - cr["p"],
             "greedy_learner": lr["greedy"], "greedy_control": cr["greedy"], "greedy_base": br["greedy"]}
            for e, br, cr, lr in zip(examples, base, control, learner)]
