"""scorer=ntk, the importance-sampled NTKEval estimator of p_learner(correct) - p_control(correct).

Completions are drawn from the control and from the learner, each scored under both models, and combined as in
ntkeval.stats.estimators: `balanced` (both sample sets by the balance heuristic; the cell's `delta` by default),
`mirror` (samples from the learner) and `importance` (samples from the control, the paper's estimator). The first
estimate listed is the cell's `delta`; every one listed is reported with its standard error.

Why balanced first: its per-sample terms are bounded (|2 tanh(log w / 2)| <= 2), so no single completion dominates
it, and it sees the correct completions of whichever model produces them. The importance estimate sees only the
control's correct completions: where the control produced at most one correct sample for a question (a
random-answer control usually does) it is zero or one huge weight, and its standard error means nothing there. Each
row counts those questions (`sparse_control`) and each question row flags them.

Weights: a sampler's own log p of its completions is the one recorded while drawing them (the log-probability
under the very distribution sampled from, ntkeval.backends.huggingface.sampling); the other model's is a teacher-forced pass. So the
denominator of every weight is exactly the proposal density, in any dtype; in bfloat16 a teacher-forced re-score of
the sampler's own completions differs from it by up to ~0.1 in log p, which would bias the weights.

The weights are ratios of the models' own probabilities, so completions must be drawn from the models as they are:
temperature 1 and top-p 1 are the only valid settings here (scorer=sampled takes any). In a reasoning format the
probability is that of the whole completion, rationale included (ntkeval.scorers.reading reads its answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ntkeval.errors import UserError, choices_error
from ntkeval.scorers.base import Roles, Stage
from ntkeval.scorers.reading import SamplingSettings
from ntkeval.scorers.sample_stages import (
    logp_stage,
    sample_logps,
    sample_stage,
    samples,
)
from ntkeval.scorers.sampled import unparsable
from ntkeval.stats import estimators
from ntkeval.stats.intervals import paired_delta

# The estimators offered, in the default order (the first is the cell's delta): the weighted ones of the registry,
# ntkeval.stats.estimators.ESTIMATORS, which declares what each needs and its bounds for the interval over questions.
ESTIMATES = ("balanced", "mirror", "importance")
assert all(estimators.BY_NAME[name].weighted for name in ESTIMATES)
SPARSE = 1  # a question's control samples with at most this many correct ones make its importance term unreliable


@dataclass
class NtkScorer(SamplingSettings):
    n: int = 16
    max_new_tokens: int = 16
    stop: list[str] | None = None   # None: the answer format's stop strings (direct: ["\n"])
    estimates: list[str] = field(default_factory=lambda: list(ESTIMATES))
    temperature: float = 1.0   # fixed: importance weights need samples from the models themselves
    top_p: float = 1.0         # fixed, for the same reason
    batch_size: int = 16       # sequences per forward pass when scoring completions
    program_timeout_s: float = 5.0  # sandbox limits for program answers (pot, hybrid)
    program_memory_mb: int = 512

    def __post_init__(self):
        self._settings_checked()
        for name, value in (("temperature", self.temperature), ("top_p", self.top_p)):
            if value != 1.0:
                raise UserError(f"scorer.{name}={value!r} is invalid for scorer=ntk; valid: 1.0 (importance weights "
                                "are ratios of the models' own probabilities; use scorer=sampled for other values)")
        self.estimates = list(self.estimates)
        if not self.estimates:
            raise choices_error("scorer.estimates", self.estimates, ESTIMATES, "empty")
        for name in self.estimates:
            if name not in ESTIMATES:
                raise choices_error("ntk estimate", name, ESTIMATES)
        if self.batch_size < 1:
            raise UserError(f"scorer.batch_size={self.batch_size!r} is invalid; valid: an integer >= 1")

    def identity(self) -> dict:
        return {"name": "ntk", **self.sampling_identity(), "estimates": self.estimates}

    def validate(self, learner) -> None:
        if learner.control() is None:
            raise UserError(f"scorer=ntk needs a learner with a control to sample from; learner={learner.name} has "
                            "none (it is compared with the untouched model); valid choices: a learner with a control "
                            "(icl-skill, tune-skill), or scorer=exact / scorer=sampled")

    def _weights_of_control_samples(self) -> bool:
        """The control's completions need scoring under the learner (an estimate from the control's samples)."""
        return any(estimators.BY_NAME[e].from_control for e in self.estimates)

    def _from_learner(self) -> bool:
        """The learner's completions are drawn and scored under the control (an estimate from the learner's)."""
        return any(estimators.BY_NAME[e].from_learner for e in self.estimates)

    def stages(self, roles: Roles) -> list[Stage]:
        c, lr, seed, fmt = roles.control, roles.learner, roles.seed, self.format
        out = [sample_stage(self.spec, c, seed, fmt, self.limits)]  # always: p_control and sparse_control need them
        if self._weights_of_control_samples():
            out.append(logp_stage(self.spec, c, lr, seed, fmt))
        if self._from_learner():
            out += [sample_stage(self.spec, lr, seed, fmt, self.limits), logp_stage(self.spec, lr, c, seed, fmt)]
        return out

    def _weighted(self, view, sampler, other) -> tuple[list[dict], list[tuple[list, list, list]] | None]:
        """The sampler's completions and, when `other` is given, per question (correct, logp under learner, logp
        under control): the sampler's own log p as recorded while drawing, the other's teacher-forced."""
        roles = view.roles
        spec, _ = self.view_settings(view)
        drawn = samples(view, spec, sampler, self.limits)
        if other is None:
            return drawn, None
        own = sample_logps(view, spec, sampler, sampler, drawn, self.batch_size)  # recorded, no forward pass
        cross = sample_logps(view, spec, sampler, other, drawn, self.batch_size)
        lp_l, lp_c = (own, cross) if sampler.id == roles.learner.id else (cross, own)
        return drawn, [([c["correct"] for c in q["completions"]], a, b) for q, a, b in zip(drawn, lp_l, lp_c)]

    def compare(self, view) -> tuple[dict, list[dict]]:
        roles = view.roles
        if not roles.has_control:
            self.validate(roles.learner.learner)
        from_control, weighted_c = self._weighted(view, roles.control,
                                                  roles.learner if self._weights_of_control_samples() else None)
        from_learner, weighted_l = (self._weighted(view, roles.learner, roles.control) if self._from_learner()
                                    else (None, None))
        absent = [None] * len(view.examples)  # a sample set no listed estimate needs is never drawn
        per_question = {name: [estimators.BY_NAME[name].estimate(c, lr) for c, lr in
                               zip(weighted_c or absent, weighted_l or absent)] for name in self.estimates}
        totals = {name: estimators.mean_over_questions(qs) for name, qs in per_question.items()}
        head = self.estimates[0]
        ci = paired_delta([e.value for e in per_question[head]], [0.0] * len(view.examples), seed=view.seed,
                          bounds=estimators.BY_NAME[head].bounds)
        correct_c = [[c["correct"] for c in q["completions"]] for q in from_control]
        acc_c = [estimators.accuracy(c).value for c in correct_c]
        sparse = [sum(c) <= SPARSE for c in correct_c]
        p_control = sum(acc_c) / len(acc_c)
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": self.n,
               "p_learner": p_control + totals[head].value, "p_control": p_control, "estimate": head,
               "delta": totals[head].value, "se": totals[head].se, "ci_low": ci.ci_low, "ci_high": ci.ci_high,
               **{f"delta_{k}": t.value for k, t in totals.items()}, **{f"se_{k}": t.se for k, t in totals.items()},
               "sparse_control": sum(sparse), "unparsable_control": unparsable(from_control)}
        if from_learner is not None:
            row["acc_learner"] = sum(estimators.accuracy(w[0]).value for w in weighted_l) / len(weighted_l)
            row["unparsable_learner"] = unparsable(from_learner)
        questions = []
        for i, e in enumerate(view.examples):
            q = {"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                 "acc_control": acc_c[i], "sparse_control": sparse[i],
                 "answers_control": [c["answer"] for c in from_control[i]["completions"]]}
            for name, qs in per_question.items():
                q[f"delta_{name}"], q[f"se_{name}"] = qs[i].value, qs[i].se
            questions.append(q)
        return row, questions
