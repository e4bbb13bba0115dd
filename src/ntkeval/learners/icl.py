"""In-context learners: a prefix of solved demonstrations placed before every test question."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ntkeval.errors import choices_error
from ntkeval.formats.writing import written_answer
from ntkeval.learners.base import Adaptation

SOURCES = ("skill", "all")


@dataclass
class InContextLearner:
    name: str = "icl-skill"
    demos: int = 8          # demonstrations in the prefix (the paper uses 8)
    source: str = "skill"   # skill: demonstrations of the train skill; all: drawn at random from every skill
    control_name: str = "icl-standard"  # what the control learner is called in results

    def __post_init__(self):
        if self.source not in SOURCES:
            raise choices_error("in-context demonstration source", self.source, SOURCES)
        if self.demos < 1:
            raise choices_error("number of demonstrations", self.demos, ["an integer >= 1"], "invalid")

    def control(self) -> "InContextLearner | None":
        """icl-skill is compared with the same number of demonstrations drawn from all skills; icl-standard with none."""
        if self.source == "all":
            return None
        return InContextLearner(name=self.control_name, demos=self.demos, source="all")

    def bind_model(self, model) -> None:
        """A prompt prefix needs nothing from the model."""

    def recorded_loss(self, context) -> list[float]:
        """In-context learning has no training loss."""
        return []

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        # Demonstrations drawn from all skills do not depend on the train skill: one prefix serves every cell.
        skill = train_skill if self.source == "skill" else None
        return {"kind": "icl", "demos": self.demos, "source": self.source, "train_skill": skill, "seed": seed}

    def _pool(self, dataset, train_skill: str) -> list:
        skills = [train_skill] if self.source == "skill" else dataset.skills()
        pool = [e for s in skills for e in dataset.train(s)]
        if len(pool) < self.demos:
            raise choices_error("number of demonstrations", self.demos,
                                [f"at most {len(pool)} (the train questions of {train_skill})"], "invalid")
        return pool

    def stage(self, context) -> None:
        """Building a prompt prefix is cheap: no cached stage."""
        return None

    def validate(self, dataset, train_skill: str) -> None:
        """Fail before any model loads if the data set cannot supply the demonstrations."""
        self._pool(dataset, train_skill)

    def adapt(self, context) -> Adaptation:
        pool = self._pool(context.dataset, context.train_skill)
        skill_tag = context.train_skill if self.source == "skill" else "*"
        rng = random.Random(f"{context.seed}:icl:{self.source}:{skill_tag}")
        demos = rng.sample(pool, self.demos)
        # each demonstration written in the cell's answer format (its worked solution), for icl-skill and its
        # control icl-standard alike, so the two differ only in which skills the demonstrations show
        answers = [written_answer(context.format, context.dataset, e) for e in demos]
        return Adaptation(prefix=context.fmt.demonstrations(demos, answers))

    def solution_skills(self, dataset, train_skill: str) -> list[str]:
        """The skills whose worked solutions its demonstrations (and its control's) need: all when either draws
        from all skills."""
        return dataset.skills() if self.source == "all" or self.control() is not None else [train_skill]
