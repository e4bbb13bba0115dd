"""OPRO as a learner (Yang et al. 2023): an instruction, optimised on the train skill's train questions, placed
before every test question. Each round the optimizer model (the untouched model under test, or `optimizer_model`)
reads a meta prompt of the best instructions so far with their scores and a few solved train questions, and proposes
new ones; each is scored by its exact mean p(correct) on a seeded batch of train questions under the untouched
model. The best one is the adaptation.

Control, opro-start: the starting instruction, scored the same way on the same batch, as the prefix. Both adapt with
one instruction line in the same place; only the optimisation differs. The whole optimisation is one cached stage.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any

from ntkeval.backends.base import SCORING_RULE_VERSION, ModelLoader, SamplingSpec
from ntkeval.cache import Checked, stable_hash
from ntkeval.errors import UserError
from ntkeval.formats.writing import written_answer
from ntkeval.learners.base import Adaptation, AdaptationRecord
from ntkeval.learners.opro_meta import (
    META_VERSION,
    SLOT,
    Scored,
    best,
    meta_prompt,
    read_proposals,
)

log = logging.getLogger(__name__)
STAGE = "opro"       # the stage-cache kind of an optimisation (and of the control's start score)
SCORE_BATCH = 16     # sequences per forward pass when scoring instructions (scores do not depend on it)
START = "Let's solve the problem."  # the paper's starting instruction for GSM8K
COLUMNS = ["round", "instruction", "score", "kept"]


def _whole(key: str, value: Any, low: int, note: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"learner.{key}={value!r} is invalid; valid: an integer >= {low} ({note})")


@dataclass
class StartInstruction:
    """opro-start: the starting instruction as the prefix, scored on the train batch for the record; no search."""
    name: str = "opro-start"
    start: str = START   # the instruction the optimisation starts from (one line)
    batch: int = 8       # train questions an instruction is scored on

    def __post_init__(self):
        if not isinstance(self.start, str) or not self.start.strip() or "\n" in self.start:
            raise UserError(f"learner.start={self.start!r} is invalid; valid: a non-empty instruction of one line, "
                            f"e.g. {START!r}")
        _whole("batch", self.batch, 1, "train questions each instruction is scored on")

    def control(self) -> Any:
        """Compared with the untouched model."""
        return None

    def bind_model(self, model) -> None:
        """An instruction needs nothing from the model."""

    def recorded_loss(self, context) -> list[float]:
        """No training, no loss."""
        return []

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        return {"kind": "instruction", "start": self.start, "batch": self.batch, "train_skill": train_skill,
                "seed": seed}

    def _limits(self) -> dict[str, tuple[int, int]]:
        """The settings that draw train questions: name -> (value, least valid value)."""
        return {"batch": (self.batch, 1)}

    def validate(self, dataset, train_skill: str) -> None:
        """Fail before any model loads when the train skill has fewer questions than the batch (or exemplars)."""
        size = len(dataset.train(train_skill))
        for key, (value, low) in self._limits().items():
            if value > size:
                raise UserError(f"learner.{key}={value} is invalid; valid: an integer in [{low}, {size}] (the train "
                                f"questions of {train_skill}: dataset.n_train)")

    def solution_skills(self, dataset, train_skill: str) -> list[str]:
        """Its scored targets (and the meta prompt's exemplars) are written answers of the train skill."""
        return [train_skill]

    def stage(self, context) -> tuple[str, dict]:
        return STAGE, {"model": context.model_key, "dataset": context.dataset.identity(),
                       "format": context.fmt.identity(), **context.format_key(), "rule": SCORING_RULE_VERSION,
                       "learner": self.key(context.train_skill, context.seed)}

    def adapt(self, context) -> Adaptation:
        kind, parts = self.stage(context)
        value = context.cache.record(kind, parts, Checked(lambda: self._compute(context), self._problem))
        return Adaptation(prefix=self._instruction(value) + "\n", record=self._record(value))

    def recorded_record(self, context) -> AdaptationRecord | None:
        """The record of a cached adaptation, never computing it."""
        kind, parts = self.stage(context)
        value = context.cache.peek(kind, parts, check=self._problem)
        return None if value is None else self._record(value)

    # what this learner computes, stores and reports (OproLearner overrides these) --------------------------------
    def _compute(self, context) -> dict:
        return {"instruction": self.start, "score": self._scorer(context)(self.start)}

    def _problem(self, value) -> str | None:
        if not isinstance(value, dict) or value.get("instruction") != self.start or not _probability(value.get("score")):
            return "expected the start instruction with a score in [0, 1]"
        return None

    def _instruction(self, value: dict) -> str:
        return value["instruction"]

    def _record(self, value: dict) -> AdaptationRecord:
        return AdaptationRecord(info={"start_instruction": value["instruction"], "start_score": value["score"]})

    def _scorer(self, context):
        """instruction -> its mean p(correct) on the seeded train batch under the untouched model: every question's
        target is its answer written in the cell's answer format, so this works in every format."""
        rng = random.Random(f"{context.seed}:{context.train_skill}:opro-batch")
        examples = rng.sample(context.dataset.train(context.train_skill), self.batch)
        targets = [context.fmt.target(written_answer(context.format, context.dataset, e)) for e in examples]

        def score(instruction: str) -> float:
            requests = [(context.fmt.prompt(e, instruction + "\n"), t) for e, t in zip(examples, targets)]
            with context.session.language_model(None) as lm:
                scores = lm.score(requests, batch_size=SCORE_BATCH, desc=f"scoring an instruction on "
                                                                         f"{context.train_skill}")
            return sum(math.exp(s.logprob) for s in scores) / len(scores)

        return score


@dataclass
class OproLearner(StartInstruction):
    """opro: `rounds` rounds of `proposals` sampled instructions from a meta prompt of the best `keep` so far."""
    name: str = "opro"
    control_name: str = "opro-start"
    rounds: int = 3             # optimisation rounds
    proposals: int = 4          # instructions sampled per round
    keep: int = 4               # best instructions so far shown in the meta prompt
    exemplars: int = 3          # solved train questions shown in the meta prompt (0: instructions only)
    opt_temperature: float = 1.0  # sampling temperature of the proposals
    max_new_tokens: int = 32    # tokens per proposal
    max_chars: int = 200        # longer proposals are dropped
    optimizer_model: Any = None  # None: the untouched model under test; else a ModelLoader (a conf/model node)

    def __post_init__(self):
        super().__post_init__()
        _whole("rounds", self.rounds, 1, "optimisation rounds")
        _whole("proposals", self.proposals, 2, "instructions sampled per round")
        _whole("keep", self.keep, 1, "best instructions shown in the meta prompt")
        _whole("exemplars", self.exemplars, 0, "solved train questions shown in the meta prompt")
        _whole("max_new_tokens", self.max_new_tokens, 1, "tokens per proposal")
        _whole("max_chars", self.max_chars, 1, "longer proposals are dropped")
        temperature = self.opt_temperature
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(
                temperature) or temperature <= 0:
            raise UserError(f"learner.opt_temperature={temperature!r} is invalid; valid: a number > 0 (the "
                            "proposals' sampling temperature; 1.0 samples the optimizer model as it is)")
        if self.optimizer_model is not None and not isinstance(self.optimizer_model, ModelLoader):
            raise UserError(f"learner.optimizer_model={self.optimizer_model!r} is invalid; valid: null (the model "
                            "under test) or a model config, e.g. +model@learner.optimizer_model=smollm2")

    def control(self) -> StartInstruction:
        """The starting instruction on the same batch: the same kind of adaptation, without the optimisation."""
        return StartInstruction(name=self.control_name, start=self.start, batch=self.batch)

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        optimizer = self.optimizer_model.identity() if self.optimizer_model is not None else None
        return {"kind": "opro", "start": self.start, "batch": self.batch, "rounds": self.rounds,
                "proposals": self.proposals, "keep": self.keep, "exemplars": self.exemplars,
                "opt_temperature": float(self.opt_temperature), "max_new_tokens": self.max_new_tokens,
                "max_chars": self.max_chars, "optimizer_model": optimizer, "meta": META_VERSION,
                "train_skill": train_skill, "seed": seed}

    def _limits(self) -> dict[str, tuple[int, int]]:
        return {"batch": (self.batch, 1), "exemplars": (self.exemplars, 0)}

    def _compute(self, context) -> dict:
        """The optimisation: the trajectory (every scored instruction, the start first, with whether it entered
        the best `keep`), the best instruction, the rounds that proposed nothing new, and the dropped proposals."""
        score = self._scorer(context)
        spec = SamplingSpec(n=self.proposals, temperature=self.opt_temperature, max_new_tokens=self.max_new_tokens,
                            stop=("\n",))
        own = self.optimizer_model.session(getattr(context.session, "device", "cpu")) \
            if self.optimizer_model is not None else None
        proposer = own if own is not None else context.session
        history = [Scored(0, self.start, score(self.start))]
        kept, empty, dropped = [True], [], 0
        try:
            for round_ in range(1, self.rounds + 1):
                prompt = meta_prompt(best(history, self.keep), self._exemplars(context, round_))
                seed = int(stable_hash({"seed": context.seed, "train_skill": context.train_skill, "round": round_,
                                        "stage": STAGE}), 16) % (2 ** 63)
                with proposer.language_model(None) as lm:
                    (completions,) = lm.sample([prompt], spec, [seed], desc=f"opro round {round_}: proposing")
                fresh, lost = read_proposals(completions, {s.instruction for s in history}, self.max_chars)
                dropped += lost
                if not fresh:
                    empty.append(round_)
                    log.warning("opro round %d on %s: no valid new instruction among %d proposals", round_,
                                context.train_skill, len(completions))
                history += [Scored(round_, instruction, score(instruction)) for instruction in fresh]
                top = {id(s) for s in best(history, self.keep)}
                kept += [id(s) in top for s in history[len(kept):]]
                log.info("opro round %d on %s: %d new instructions, best %.4g", round_, context.train_skill,
                         len(fresh), best(history, 1)[0].score)
        finally:
            close = getattr(own, "close", None)  # a backend whose session holds more than memory may close it;
            if callable(close):                   # otherwise its weights are freed with it when this returns
                close()
        winner = best(history, 1)[0]
        return {"trajectory": [{"round": s.round, "instruction": s.instruction, "score": s.score, "kept": k}
                               for s, k in zip(history, kept)],
                "best": {"round": winner.round, "instruction": winner.instruction, "score": winner.score},
                "empty_rounds": empty, "dropped": dropped}

    def _exemplars(self, context, round_: int) -> list[tuple[str, str]]:
        """A fresh seeded draw of solved train questions per round (as the paper draws them per step): the input
        with the instruction's place marked, and the answer written in the cell's answer format."""
        rng = random.Random(f"{context.seed}:{context.train_skill}:opro-exemplars:{round_}")
        drawn = rng.sample(context.dataset.train(context.train_skill), self.exemplars)
        return [(context.fmt.prompt(e, SLOT + "\n"), written_answer(context.format, context.dataset, e))
                for e in drawn]

    def _problem(self, value) -> str | None:
        """A stored optimisation must start from this start instruction, hold scores in [0, 1], and name as best
        the highest-scoring instruction of its trajectory."""
        trajectory = value.get("trajectory") if isinstance(value, dict) else None
        if not isinstance(trajectory, list) or not trajectory or not isinstance(value.get("best"), dict):
            return "expected a trajectory and a best instruction"
        rows = [r for r in trajectory if isinstance(r, dict) and isinstance(r.get("instruction"), str)
                and _probability(r.get("score")) and isinstance(r.get("round"), int) and r.get("kept") in (True, False)]
        if len(rows) != len(trajectory) or trajectory[0]["instruction"] != self.start or trajectory[0]["round"] != 0:
            return "expected rows of (round, instruction, score in [0, 1], kept), the start instruction first"
        if max(r["round"] for r in rows) > self.rounds or not isinstance(value.get("empty_rounds"), list):
            return f"expected at most {self.rounds} rounds"
        top = best([Scored(r["round"], r["instruction"], r["score"]) for r in rows], 1)[0]
        if value["best"] != {"round": top.round, "instruction": top.instruction, "score": top.score}:
            return "its best instruction is not the highest-scoring one of its trajectory"
        return None

    def _instruction(self, value: dict) -> str:
        return value["best"]["instruction"]

    def _record(self, value: dict) -> AdaptationRecord:
        trajectory = value["trajectory"]
        info = {"best_instruction": value["best"]["instruction"], "best_score": value["best"]["score"],
                "best_round": value["best"]["round"], "start_score": trajectory[0]["score"], "rounds": self.rounds,
                "scored_instructions": len(trajectory), "dropped_proposals": value["dropped"],
                "empty_rounds": list(value["empty_rounds"])}
        rows = [[r["round"], r["instruction"], r["score"], r["kept"]] for r in trajectory]
        return AdaptationRecord(info=info, tables={"instructions": {"columns": list(COLUMNS), "rows": rows}})


def _probability(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
