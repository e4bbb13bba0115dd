"""scorer=sampled, the paper's baseline: N completions per question from each role, the final answer read from each,
accuracy counted; the kernel entry is the difference of the learner's and the control's accuracies.

Completions whose answer cannot be read are counted as not correct and reported as `unparsable_*` (a fraction of
the samples), so a format the parser does not understand shows up instead of passing for a zero."""

from __future__ import annotations

from dataclasses import dataclass, field

from ntkeval.backends.base import SamplingSpec
from ntkeval.scorers.base import Roles, Stage
from ntkeval.scorers.sample_stages import sample_stage, samples
from ntkeval.stats import estimators
from ntkeval.stats.intervals import paired_delta


@dataclass
class SampledScorer:
    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    stop: list[str] = field(default_factory=lambda: ["\n"])

    def __post_init__(self):
        self.spec = SamplingSpec(self.n, self.temperature, self.top_p, self.max_new_tokens, tuple(self.stop))

    def identity(self) -> dict:
        return {"name": "sampled", **self.spec.identity()}

    def validate(self, learner) -> None:
        """Every learner can be sampled."""

    def stages(self, roles: Roles) -> list[Stage]:
        return [sample_stage(self.spec, r, roles.seed) for r in roles.distinct(roles.base, roles.control, roles.learner)]

    def compare(self, view) -> tuple[dict, list[dict]]:
        roles = view.roles
        drawn = {r.id: samples(view, self.spec, r) for r in roles.distinct(roles.base, roles.control, roles.learner)}
        base, control, learner = (drawn[r.id] for r in (roles.base, roles.control, roles.learner))
        acc = lambda rows: [estimators.accuracy([c["correct"] for c in q["completions"]]) for q in rows]  # noqa: E731
        acc_b, acc_c, acc_l = acc(base), acc(control), acc(learner)
        per_question = [estimators.accuracy_difference([c["correct"] for c in lq["completions"]],
                                                       [c["correct"] for c in cq["completions"]])
                        for lq, cq in zip(learner, control)]
        total = estimators.mean_over_questions(per_question)
        ci = paired_delta([a.value for a in acc_l], [a.value for a in acc_c], seed=view.seed)
        mean = lambda xs: sum(x.value for x in xs) / len(xs)  # noqa: E731
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": self.spec.n,
               "p_learner": mean(acc_l), "p_control": mean(acc_c), "p_base": mean(acc_b),
               "delta": total.value, "se": total.se, "ci_low": ci.ci_low, "ci_high": ci.ci_high,
               "unparsable_learner": unparsable(learner), "unparsable_control": unparsable(control),
               "unparsable_base": unparsable(base)}
        questions = [{"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                      "p_learner": al.value, "p_control": ac.value, "p_base": ab.value, "delta": d.value, "se": d.se,
                      "answers_learner": [c["answer"] for c in lq["completions"]],
                      "answers_control": [c["answer"] for c in cq["completions"]]}
                     for e, al, ac, ab, d, lq, cq in zip(view.examples, acc_l, acc_c, acc_b, per_question, learner,
                                                          control)]
        return row, questions


def unparsable(rows: list[dict]) -> float:
    """The fraction of all completions whose answer could not be read."""
    flags = [c["unparsable"] for q in rows for c in q["completions"]]
    return sum(flags) / len(flags)
