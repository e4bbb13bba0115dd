"""scorer=sampled, the paper's baseline: N completions per question from each role, the final answer read from each,
accuracy counted; the kernel entry is the difference of the learner's and the control's accuracies.

Completions whose answer cannot be read are counted as not correct and reported as `unparsable_*` (a fraction of
the samples), so a format the parser does not understand shows up instead of passing for a zero. Every answer format
is read (ntkeval.scorers.reading); where completions are programs, the fraction that failed to run is reported as
`program_failed_*` (counted as wrong)."""

from __future__ import annotations

from dataclasses import dataclass

from ntkeval.scorers.sample_stages import EveryRoleSampled
from ntkeval.stats import estimators
from ntkeval.stats.intervals import paired_delta


@dataclass
class SampledScorer(EveryRoleSampled):
    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    stop: list[str] | None = None   # None: the answer format's stop strings (direct: ["\n"])
    program_timeout_s: float = 5.0  # sandbox limits for program answers (pot, hybrid)
    program_memory_mb: int = 512

    def __post_init__(self):
        self._settings_checked()

    def identity(self) -> dict:
        return {"name": "sampled", **self.sampling_identity()}

    def compare(self, view) -> tuple[dict, list[dict]]:
        spec, _ = self.view_settings(view)
        drawn = self.draws(view, spec)
        base, control, learner = drawn["base"], drawn["control"], drawn["learner"]
        acc = lambda rows: [estimators.accuracy([c["correct"] for c in q["completions"]]) for q in rows]  # noqa: E731
        acc_b, acc_c, acc_l = acc(base), acc(control), acc(learner)
        per_question = [estimators.accuracy_difference([c["correct"] for c in lq["completions"]],
                                                       [c["correct"] for c in cq["completions"]])
                        for lq, cq in zip(learner, control)]
        total = estimators.mean_over_questions(per_question)
        ci = paired_delta([a.value for a in acc_l], [a.value for a in acc_c], seed=view.seed)
        mean = lambda xs: sum(x.value for x in xs) / len(xs)  # noqa: E731
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": spec.n,
               "p_learner": mean(acc_l), "p_control": mean(acc_c), "p_base": mean(acc_b),
               "delta": total.value, "se": total.se, "ci_low": ci.ci_low, "ci_high": ci.ci_high,
               "unparsable_learner": unparsable(learner), "unparsable_control": unparsable(control),
               "unparsable_base": unparsable(base), **program_failures(base=base, control=control, learner=learner)}
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


def program_failures(**rows_by_role: list[dict]) -> dict:
    """program_failed_<role>: the fraction of completions that were programs and did not run to the end (error,
    timeout, memory, output limit, forbidden); nothing when no completion was a program (direct, cot: today's rows)."""
    statuses = {role: [c.get("program_status") for q in rows for c in q["completions"]]
                for role, rows in rows_by_role.items()}
    if not any(s is not None for ss in statuses.values() for s in ss):
        return {}
    return {f"program_failed_{role}": sum(s not in (None, "ok") for s in ss) / len(ss) for role, ss in statuses.items()}
