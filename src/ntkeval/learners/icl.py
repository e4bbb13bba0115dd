"""In-context learners: a prefix of solved demonstrations placed before every test question."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ntkeval.errors import choices_error
from ntkeval.formats.writing import written_answer
from ntkeval.learners.base import Adaptation, checked_curve

SOURCES = ("skill", "all")


@dataclass
class InContextLearner:
    name: str = "icl-skill"
    demos: int = 8          # demonstrations in the prefix (the paper uses 8)
    source: str = "skill"   # skill: demonstrations of the train skill; all: drawn at random from every skill
    control_name: str = "icl-standard"  # what the control learner is called in results
    curve: list[int] | None = None  # learning curve: numbers of demonstrations (0..demos) to score too; null: none
    # at_size(k): the first `demos` of a draw of this many (the full learner's draw); None: a draw of its own
    prefix_of: int | None = field(default=None, init=False, repr=False)
    curve_unit: ClassVar[str] = "demos"

    def __post_init__(self):
        if self.source not in SOURCES:
            raise choices_error("in-context demonstration source", self.source, SOURCES)
        if self.demos < 1:
            raise choices_error("number of demonstrations", self.demos, ["an integer >= 1"], "invalid")
        self.curve = checked_curve(self.curve, 0, self.demos, f"learner.demos={self.demos}")

    def control(self) -> "InContextLearner | None":
        """icl-skill is compared with the same number of demonstrations drawn from all skills; icl-standard with none.
        At a curve size, the control at the same size (the first k of its own full draw)."""
        if self.source == "all":
            return None
        twin = InContextLearner(name=self.control_name, demos=self.prefix_of or self.demos, source="all",
                                curve=self.curve)
        return twin if self.prefix_of is None else twin.at_size(self.demos)

    def curve_sizes(self) -> list[int]:
        return list(self.curve or [])

    def at_size(self, size: int) -> InContextLearner:
        """The learner with the first `size` of its demonstrations (one draw, so each size is a prefix of the next);
        the full size is the learner itself (same key, so its cached scores serve the curve)."""
        if size == self.demos and self.prefix_of is None:
            return copy.copy(self)
        sized = copy.copy(self)  # not through __post_init__: 0 demonstrations is a curve size, not a learner option
        sized.prefix_of, sized.demos = self.prefix_of or self.demos, size
        return sized

    def bind_model(self, model) -> None:
        """A prompt prefix needs nothing from the model."""

    def recorded_loss(self, context) -> list[float]:
        """In-context learning has no training loss."""
        return []

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        if self.demos == 0:  # no demonstrations: the same prompts whatever the source, skill or seed (learner and
            return {"kind": "icl", "demos": 0}  # control share one cached score, so the curve's origin is exactly 0)
        # Demonstrations drawn from all skills do not depend on the train skill: one prefix serves every cell.
        skill = train_skill if self.source == "skill" else None
        drawn = {} if self.prefix_of is None else {"prefix_of": self.prefix_of}  # the first `demos` of that draw
        return {"kind": "icl", "demos": self.demos, **drawn, "source": self.source, "train_skill": skill, "seed": seed}

    def _pool(self, dataset, train_skill: str) -> list:
        skills = [train_skill] if self.source == "skill" else dataset.skills()
        pool = [e for s in skills for e in dataset.train(s)]
        drawn = self.prefix_of or self.demos
        if len(pool) < drawn:
            raise choices_error("number of demonstrations", drawn,
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
        demos = rng.sample(pool, self.prefix_of or self.demos)[:self.demos]  # a curve size: a prefix of the draw
        # each demonstration written in the cell's answer format (its worked solution), for icl-skill and its
        # control icl-standard alike, so the two differ only in which skills the demonstrations show
        answers = [written_answer(context.format, context.dataset, e) for e in demos]
        return Adaptation(prefix=context.fmt.demonstrations(demos, answers))

    def solution_skills(self, dataset, train_skill: str) -> list[str]:
        """The skills whose worked solutions its demonstrations (and its control's) need: all when either draws
        from all skills."""
        return dataset.skills() if self.source == "all" or self.control() is not None else [train_skill]
