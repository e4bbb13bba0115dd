"""scorer=verify, self-verification / FOBAR (Weng et al. 2023; Jiang et al. 2023): the candidates of a question are
the distinct answers among its sampled completions (the samples stage every sampling scorer shares); for each, the
data set writes a backward question (one number of the question masked, the candidate given as the answer:
ReasoningDataSet.backward_question), the same role's model answers it `m` times (sampled, its own cached stage), and
the candidate's score is the fraction of those answers that recover the masked number (read in the answer format as
an answer of the masked number's kind).

The verified answer is the candidate with the largest score x votes (votes: how many completions gave it), so a
backward check re-weights the vote and never promotes an answer no completion gave; ties go to more votes, then to
the answer seen first. A candidate without a backward question scores 0, so when no candidate can be checked the
verified answer is the plain majority. The kernel entry is verified accuracy, learner - control, with its bounded
interval over questions; the plain majority's accuracy (vote_*) and how often verification changed it are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from ntkeval.backends.base import SamplingSpec
from ntkeval.cache import Checked
from ntkeval.data.answer_kinds import equivalent, infer_kind
from ntkeval.data.base import Example
from ntkeval.errors import UserError
from ntkeval.scorers.base import Role, Roles, Stage
from ntkeval.scorers.paired import mean, paired_entry
from ntkeval.scorers.reading import (
    ProgramLimits,
    SamplingSettings,
    answer_groups,
    answers,
)
from ntkeval.scorers.sample_stages import question_seed, sample_stage, samples
from ntkeval.scorers.sampled import unparsable

BACKWARD = "backward-samples"
BACKWARD_VERSION = 1  # bump when what a backward-samples entry holds or how it is read changes


@dataclass
class VerifyScorer(SamplingSettings):
    n: int = 16                     # forward completions per question and role (the candidates' votes)
    m: int = 4                      # backward completions per candidate (>= 2)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16        # for forward and backward completions alike
    stop: list[str] | None = None   # None: the answer format's stop strings (direct: ["\n"])
    program_timeout_s: float = 5.0  # sandbox limits for program answers (pot, hybrid)
    program_memory_mb: int = 512

    def __post_init__(self):
        self._settings_checked()
        if not isinstance(self.m, int) or isinstance(self.m, bool) or self.m < 2:
            raise UserError(f"scorer.m={self.m!r} is invalid; valid: an integer >= 2 (backward completions per "
                            "candidate answer)")

    def identity(self) -> dict:
        return {"name": "verify", **self.sampling_identity(), "m": self.m}

    def validate(self, learner) -> None:
        """Every learner can be sampled."""

    def validate_data(self, dataset, fmt=None) -> None:
        """Before any model loads: the data set must write backward questions."""
        if not callable(getattr(dataset, "backward_question", None)):
            raise UserError(f"scorer=verify needs a data set that writes backward questions (backward_question); "
                            f"dataset={getattr(dataset, 'name', type(dataset).__name__)} has none; valid: arith, "
                            "khanskill, or scorer=sampled / majority")

    def backward_spec(self, spec: SamplingSpec) -> SamplingSpec:
        return SamplingSpec(self.m, spec.temperature, spec.top_p, spec.max_new_tokens, spec.stop)

    def _roles(self, roles: Roles) -> list[Role]:
        return roles.distinct(roles.control, roles.learner)

    def stages(self, roles: Roles) -> list[Stage]:
        out = []
        for r in self._roles(roles):
            forward = sample_stage(self.spec, r, roles.seed, self.format, self.limits)
            out += [forward, backward_stage(self.backward_spec(self.spec), forward)]
        return out

    def compare(self, view) -> tuple[dict, list[dict]]:
        roles = view.roles
        spec, fmt = self.view_settings(view)
        self.validate_data(view.dataset)
        checked = {}
        for r in self._roles(roles):
            drawn = samples(view, spec, r, self.limits)
            forward = sample_stage(spec, r, view.seed, fmt, self.limits)
            checked[r.id] = (drawn, backward_samples(view, self.backward_spec(spec), r, drawn, forward, fmt,
                                                     self.limits))
        named = {"control": roles.control, "learner": roles.learner}
        picks = {name: [pick(q) for q in checked[r.id][1]] for name, r in named.items()}
        verified = {name: [p["verified_correct"] for p in ps] for name, ps in picks.items()}
        voted = {name: [p["voted_correct"] for p in ps] for name, ps in picks.items()}
        candidates = {name: [c for q in checked[r.id][1] for c in q["candidates"]] for name, r in named.items()}
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": spec.n, "backward_samples": self.m,
               **{f"p_{name}": mean(verified[name]) for name in named},
               **paired_entry(verified["learner"], verified["control"], view.seed),
               **{f"vote_{name}": mean(voted[name]) for name in named},
               **{f"changed_{name}": mean([p["changed"] for p in picks[name]]) for name in named},
               **{f"unverifiable_{name}": (mean([c["question"] is None for c in candidates[name]])
                                           if candidates[name] else 0.0) for name in named},
               **{f"unparsable_{name}": unparsable(checked[r.id][0]) for name, r in named.items()}}
        questions = [{"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                      **{f"p_{name}": verified[name][i] for name in named},
                      "delta": verified["learner"][i] - verified["control"][i],
                      **{f"verified_{name}": picks[name][i]["verified"] for name in named},
                      **{f"vote_{name}": voted[name][i] for name in named},
                      **{f"scores_{name}": {c["answer"]: c["score"] for c in checked[r.id][1][i]["candidates"]}
                         for name, r in named.items()}}
                     for i, e in enumerate(view.examples)]
        return row, questions


def backward_stage(spec: SamplingSpec, forward: Stage) -> Stage:
    """The backward completions of one role: keyed by their own sampling settings and by everything that keys the
    forward samples their candidates come from."""
    return Stage(BACKWARD, forward.role, {"sampling": spec.identity(), "forward": forward.parts,
                                          "version": BACKWARD_VERSION})


def candidates_of(completions: list[dict], kind: str) -> list[dict]:
    """The distinct answers of one question's completions, first seen first: answer, votes, correct."""
    groups = answer_groups([c["answer"] for c in completions], kind)
    return [{"answer": completions[g[0]]["answer"], "votes": len(g), "correct": completions[g[0]]["correct"]}
            for g in groups]


def backward_samples(view, spec: SamplingSpec, role: Role, drawn: list[dict], forward: Stage, fmt,
                     limits: ProgramLimits) -> list[dict]:
    """Per question {"id", "candidates": [{answer, votes, correct, question, masked, recovered: [0/1] * m,
    score}]}: each candidate's backward question asked of `role`'s model m times (question None: none written)."""
    def compute() -> list[dict]:
        out, asked = [], []  # asked: (candidate record, backward example)
        for e, q in zip(view.examples, drawn):
            found = candidates_of(q["completions"], view.dataset.answer_kind(e))
            for j, c in enumerate(found):
                written = view.dataset.backward_question(e, c["answer"])
                c["question"], c["masked"] = written if written is not None else (None, None)
                c["recovered"], c["score"] = [], 0.0
                if written is not None:
                    asked.append((c, Example(f"{e.id}/backward/{j}", e.skill, written[0], written[1])))
            out.append({"id": e.id, "candidates": found})
        if asked:  # the model loads only when some candidate has a backward question
            with view.open(role) as (lm, prefix):
                prompts = [view.fmt.prompt(b, prefix) for _, b in asked]
                seeds = [question_seed(view.seed, role, b.id, spec) for _, b in asked]
                completions = lm.sample(prompts, spec, seeds, desc=f"backward questions of {view.test_skill} "
                                                                   f"under {role.name}")
            kinds = [infer_kind(b.answer) for _, b in asked]
            read = answers([x.text for cs in completions for x in cs], [k for k in kinds for _ in range(spec.n)],
                           fmt, limits)
            for i, ((c, b), kind) in enumerate(zip(asked, kinds)):
                given = [r["answer"] for r in read[i * spec.n:(i + 1) * spec.n]]
                c["answers"] = given
                c["recovered"] = [int(a is not None and equivalent(a, b.answer, kind)) for a in given]
                c["score"] = sum(c["recovered"]) / spec.n
        return out

    return view.record(backward_stage(spec, forward), Checked(compute, backward_problem(view.examples, drawn)))


def pick(question: dict) -> dict:
    """The verified answer (largest score x votes, then votes, then first seen) and the plain majority's."""
    found = question["candidates"]
    if not found:
        return {"verified": None, "verified_correct": 0, "voted_correct": 0, "changed": 0}
    order = range(len(found))
    best = max(order, key=lambda i: (found[i]["score"] * found[i]["votes"], found[i]["votes"], -i))
    voted = max(order, key=lambda i: (found[i]["votes"], -i))
    return {"verified": found[best]["answer"], "verified_correct": int(found[best]["correct"]),
            "voted_correct": int(found[voted]["correct"]), "changed": int(best != voted)}


def backward_problem(examples, drawn: list[dict]):
    """The check a cached backward-samples record must pass: per question, in order, candidates with a score."""
    ids = [e.id for e in examples]

    def problem(rows) -> str | None:
        if not isinstance(rows, list) or [r.get("id") if isinstance(r, dict) else None for r in rows] != ids:
            return f"expected the {len(ids)} questions in order"
        for r in rows:
            if not isinstance(r.get("candidates"), list) or not all(
                    isinstance(c, dict) and isinstance(c.get("score"), (int, float)) and "answer" in c
                    for c in r["candidates"]):
                return f"question {r['id']!r} has a candidate without an answer and a score"
        return None

    return problem
