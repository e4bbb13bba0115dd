"""The sampled stages shared by every scorer that samples (sampled, ntk, majority, verify, process), each cached per
role and test skill:

  samples      N completions per question drawn from one role, with the log-probability each was drawn with, the
               answer read from each in the cell's answer format (a program's from its output, run in the sandbox,
               with its status) and whether it is correct (or unreadable); keyed by the sampling settings, the
               seed of the random streams, the versions of the answer parser and of answer equivalence and, for a
               reasoning format, the reading rule and sandbox limits (ntkeval.scorers.reading), so every scorer
               shares them and a changed verdict rule never reuses old verdicts
  sample-logps log p of one role's completions under another role, teacher-forced (the importance weights'
               other ingredient; a sampler's own log p is the one recorded while drawing)
"""

from __future__ import annotations

import math

from ntkeval.backends.base import SCORING_RULE_VERSION, Completion, SamplingSpec
from ntkeval.cache import Checked, stable_hash
from ntkeval.data.answer_kinds import EQUIVALENCE_VERSION
from ntkeval.scorers.base import Role, Stage
from ntkeval.scorers.reading import (
    ProgramLimits,
    ProgramRunner,
    SamplingSettings,
    answer_format,
    answers,
    is_direct,
    reading_parts,
)

SAMPLES = "samples"
SAMPLE_LOGPS = "sample-logps"
PARSER_VERSION = 1  # bump when final_answer changes: it invalidates cached samples' verdicts
NO_PROGRAMS = ProgramLimits()  # the default limits (keys only a reasoning format's samples)
SAMPLES_VERSION = 2  # bump when what a samples entry holds changes (2: the log p each completion was drawn with)


def sample_stage(spec: SamplingSpec, role: Role, seed: int, fmt=None, limits: ProgramLimits = NO_PROGRAMS) -> Stage:
    """The samples of one role. `seed` is the cell's: it seeds every question's stream (question_seed), and the
    untouched model's role key (None) does not hold it (nor need the data set's seed equal it), so it must key the
    stage itself. A reasoning format `fmt` adds its reading parts; direct (None) keys exactly as before formats."""
    return Stage(SAMPLES, role, {"sampling": spec.identity(), "seed": seed, "parser": PARSER_VERSION,
                                 "equivalence": EQUIVALENCE_VERSION, "version": SAMPLES_VERSION,
                                 **reading_parts(fmt, limits)})


def logp_stage(spec: SamplingSpec, sampler: Role, scorer: Role, seed: int, fmt=None) -> Stage:
    """log p under `scorer` of `sampler`'s completions (the whole completion, rationale included): keyed by
    whatever keys those completions (a reasoning format's prompts too: its identity)."""
    return Stage(SAMPLE_LOGPS, scorer, {"sampling": spec.identity(), "seed": seed, "sampler": sampler.key,
                                        "samples": SAMPLES_VERSION, "rule": SCORING_RULE_VERSION,
                                        **({} if is_direct(fmt) else {"format": fmt.identity()})})


def question_seed(seed: int, role: Role, example_id: str, spec: SamplingSpec) -> int:
    """The random stream of one question's completions under one role: independent across roles and questions."""
    return int(stable_hash({"seed": seed, "role": role.key, "id": example_id, "sampling": spec.identity()}), 16) \
        % (2 ** 63)


def verdicts(dataset, examples, drawn: list[list[Completion]], fmt, limits: ProgramLimits,
             run: ProgramRunner | None = None) -> list[list[dict]]:
    """Per question, each completion with its answer (read in format `fmt`; None: direct), whether it is correct
    and whether it is unreadable; a program's status and output beside them. One sandbox batch for all programs."""
    kinds = [dataset.answer_kind(e) for e in examples]
    flat = [(q, c) for q, cs in enumerate(drawn) for c in cs]
    read = answers([c.text for _, c in flat], [kinds[q] for q, _ in flat], fmt, limits, run)
    out: list[list[dict]] = [[] for _ in drawn]
    for (q, c), reading in zip(flat, read):
        given = reading["answer"]
        correct = given is not None and dataset.is_correct(examples[q], given)
        out[q].append({"tokens": list(c.tokens), "text": c.text, "end": c.end, "logp": c.logp,
                       **reading, "correct": int(correct)})
    return out


def samples(view, spec: SamplingSpec, role: Role, limits: ProgramLimits = NO_PROGRAMS,
            run: ProgramRunner | None = None) -> list[dict]:
    """Per question: {"id", "completions": [{tokens, text, end, logp, answer, unparsable, correct}, ...]} (and
    program_status, program_output for a completion that is a program); `logp` is log p(tokens | prompt) under the
    distribution the tokens were drawn from (LanguageModel.sample). The answer format is the view's."""
    fmt = answer_format(view)

    def compute() -> list[dict]:
        with view.open(role) as (lm, prefix):
            prompts = [view.fmt.prompt(e, prefix) for e in view.examples]
            seeds = [question_seed(view.seed, role, e.id, spec) for e in view.examples]
            drawn = lm.sample(prompts, spec, seeds, desc=f"sampling {view.test_skill} under {role.name}")
        read = verdicts(view.dataset, view.examples, drawn, fmt, limits, run)
        return [{"id": e.id, "completions": cs} for e, cs in zip(view.examples, read)]

    return view.record(sample_stage(spec, role, view.seed, fmt, limits),
                       Checked(compute, samples_problem(view.examples, spec.n)))


def sample_logps(view, spec: SamplingSpec, sampler: Role, scorer: Role, drawn: list[dict],
                 batch_size: int) -> list[list[float]]:
    """log p under `scorer` of each completion `sampler` drew (`drawn`: its samples stage), per question; for
    scorer == sampler, the log p recorded while drawing (no forward pass)."""
    if scorer.id == sampler.id:
        return [[c["logp"] for c in q["completions"]] for q in drawn]

    def compute() -> list[list[float]]:
        with view.open(scorer) as (lm, prefix):
            prompts = [view.fmt.prompt(e, prefix) for e in view.examples]
            completions = [[Completion(tuple(c["tokens"]), c["text"], c["end"], c["logp"]) for c in q["completions"]]
                           for q in drawn]
            return lm.score_completions(prompts, completions, batch_size,
                                        desc=f"scoring {sampler.name}'s samples of {view.test_skill} "
                                             f"under {scorer.name}")

    return view.record(logp_stage(spec, sampler, scorer, view.seed, answer_format(view)),
                       Checked(compute, logps_problem(drawn)))


def samples_problem(examples, n: int):
    """The check a cached samples record must pass: per question, in order, `n` completions with token ids, a
    log p <= 0 and 0/1 verdicts; anything else (an older layout, another n) is rebuilt, not used."""
    ids = [e.id for e in examples]

    def problem(rows) -> str | None:
        if not isinstance(rows, list) or len(rows) != len(ids):
            return f"expected a list of {len(ids)} questions"
        for i, (row, id_) in enumerate(zip(rows, ids)):
            if not isinstance(row, dict) or row.get("id") != id_:
                return f"entry {i} is not question {id_!r}"
            completions = row.get("completions")
            if not isinstance(completions, list) or len(completions) != n:
                return f"question {id_!r} does not hold {n} completions"
            for c in completions:
                if not (isinstance(c, dict) and isinstance(c.get("tokens"), list) and isinstance(c.get("text"), str)
                        and _logp(c.get("logp")) and c.get("correct") in (0, 1) and c.get("unparsable") in (0, 1)):
                    return f"question {id_!r} has a completion without tokens, text, log p <= 0 or 0/1 verdicts"
        return None

    return problem


def logps_problem(drawn: list[dict]):
    """The check a cached sample-logps record must pass: one log p <= 0 per completion of `drawn`, in order."""
    sizes = [len(q["completions"]) for q in drawn]

    def problem(rows) -> str | None:
        if not isinstance(rows, list) or [len(r) if isinstance(r, list) else -1 for r in rows] != sizes:
            return f"expected {sizes} log-probabilities per question"
        if not all(_logp(v) for r in rows for v in r):
            return "a value that is not a log-probability (a number <= 0)"
        return None

    return problem


def _logp(value) -> bool:
    """A log-probability: a number <= 0 (-inf allowed: a token another model gives probability 0)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value) and value <= 0


class EveryRoleSampled(SamplingSettings):
    """A scorer that reads one draw from each role (the untouched model, the control and the learner): sampled,
    majority and process share these stages and so each other's cached samples."""

    def validate(self, learner) -> None:
        """Every learner can be sampled."""

    def stages(self, roles) -> list[Stage]:
        return [sample_stage(self.spec, r, roles.seed, self.format, self.limits)
                for r in roles.distinct(roles.base, roles.control, roles.learner)]

    def draws(self, view, spec: SamplingSpec) -> dict[str, list[dict]]:
        """Each role's samples of the view's test skill by role name (base, control, learner); a role that is
        another's (the control of a learner without one is the untouched model) is drawn once."""
        roles = view.roles
        named = {"base": roles.base, "control": roles.control, "learner": roles.learner}
        drawn = {r.id: samples(view, spec, r, self.limits) for r in roles.distinct(*named.values())}
        return {name: drawn[r.id] for name, r in named.items()}
