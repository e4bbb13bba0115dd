"""Three toy extensions written as a user would write them, outside src/: a data set, a learner and a scorer, each a
real implementation of its Protocol, each wired in by one YAML (tests/test_extension_points.py writes those).

  ToyCounting   two skills (count letters, count words) x two surfaces (a question, a command): 4 skills
  PrefixLearner an instruction line plus the first `shots` train examples of the train skill; control: the
                instruction alone
  GreedyScorer  greedy exact-match accuracy of each role (one teacher-forced pass); delta = learner - control

Their numbers are meant to be checked by hand: the questions come from a fixed word list in a fixed order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ntkeval.data.base import Example, SkillGroups, groups_by_axis
from ntkeval.errors import UserError, choices_error
from ntkeval.learners.base import AdaptContext, Adaptation
from ntkeval.scorers.base import Roles, SkillView, Stage

WORDS = ("cat", "tree", "apple", "sun", "river", "moon", "bird", "stone", "cloud", "leaf", "house", "road")
PHRASES = ("a red cat", "the sun", "birds sing at dawn", "it rains", "we walk home now", "one two",
           "a very small blue boat", "hello", "run fast", "the old mill stands still", "go", "look up there")
SURFACES = {"question": "How many {unit} are in '{text}'?", "command": "Count the {unit} in '{text}'."}
COUNTS = {"letters": (WORDS, len), "words": (PHRASES, lambda text: len(text.split()))}


class ToyCounting:
    """Counting letters of a word or words of a phrase, asked as a question or as a command. Train items are the
    first n_train of each list, test items the next n_test: no test text is ever a train text."""

    name = "toy-counting"

    def __init__(self, n_train: int = 2, n_test: int = 3):
        if n_train + n_test > len(WORDS):
            raise UserError(f"toy-counting: n_train + n_test must be at most {len(WORDS)}, got {n_train + n_test}")
        self.n_train, self.n_test = n_train, n_test

    def skills(self) -> list[str]:
        return [f"{unit}/{surface}" for unit in COUNTS for surface in SURFACES]

    def skill_groups(self) -> SkillGroups:
        """The unit counted is what is learned (deep); question or command is how it looks (surface)."""
        return SkillGroups(("unit", "surface"), deep="unit", surface="surface", of_skill=groups_by_axis(
            self.skills(), {"unit": lambda s: s.split("/")[0], "surface": lambda s: s.split("/")[1]}))

    def resolve(self, spec: str | Iterable[str]) -> list[str]:
        """'all', a skill, a unit (letters, words), a surface (question, command), or a list of these."""
        groups: dict[str, list[str]] = {}
        for skill, by_axis in self.skill_groups().of_skill.items():
            for group in by_axis.values():
                groups.setdefault(group, []).append(skill)
        chosen: set[str] = set()
        for item in [spec] if isinstance(spec, str) else list(spec):
            if item == "all":
                chosen.update(self.skills())
            elif item in self.skills():
                chosen.add(item)
            elif item in groups:
                chosen.update(groups[item])
            else:
                raise choices_error("skill", item, ("all", *groups, *self.skills()))
        return [s for s in self.skills() if s in chosen]

    def _examples(self, skill: str, split: str, start: int, count: int) -> list[Example]:
        if skill not in self.skills():
            raise choices_error("skill", skill, self.skills())
        unit, surface = skill.split("/")
        texts, counter = COUNTS[unit]
        return [Example(f"{skill}/{split}/{i}", skill, SURFACES[surface].format(unit=unit, text=text),
                        str(counter(text))) for i, text in enumerate(texts[start:start + count])]

    def train(self, skill: str) -> list[Example]:
        return self._examples(skill, "train", 0, self.n_train)

    def test(self, skill: str) -> list[Example]:
        return self._examples(skill, "test", self.n_train, self.n_test)

    def answer_kind(self, example: Example) -> str:
        return "integer"

    def is_correct(self, example: Example, given: str) -> bool:
        return given.strip() == example.answer

    def random_answer(self, example: Example, rng: random.Random) -> str:
        """A different count of the same size: one to three away from the right one, never below 1."""
        right = int(example.answer)
        return str(rng.choice([c for c in range(max(1, right - 3), right + 4) if c != right]))

    def identity(self) -> dict:
        return {"name": self.name, "n_train": self.n_train, "n_test": self.n_test, "version": 1}


@dataclass
class PrefixLearner:
    """An instruction line, then `shots` solved train examples of the train skill; its control has the
    instruction alone, so the kernel entry measures what the examples add beyond the instruction."""
    name: str = "prefix"
    shots: int = 2
    instruction: str = "Answer with a number.\n"
    control_name: str = "prefix-control"

    def control(self) -> PrefixLearner | None:
        if self.shots == 0:
            return None  # the instruction alone is compared with the untouched model
        return PrefixLearner(name=self.control_name, shots=0, instruction=self.instruction)

    def bind_model(self, model: Any) -> None:
        """A prefix needs nothing from the model."""

    def recorded_loss(self, context: AdaptContext) -> list[float]:
        return []

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        return {"kind": "toy-prefix", "shots": self.shots, "instruction": self.instruction,
                "train_skill": train_skill if self.shots else None, "seed": seed}

    def stage(self, context: AdaptContext) -> tuple[str, dict] | None:
        return None  # building a prefix is cheap: nothing to cache

    def validate(self, dataset: Any, train_skill: str) -> None:
        available = len(dataset.train(train_skill))
        if self.shots > available:
            raise UserError(f"learner.shots={self.shots} is invalid; expected at most {available} (the train "
                            f"examples of {train_skill})")

    def adapt(self, context: AdaptContext) -> Adaptation:
        examples = context.dataset.train(context.train_skill)[:self.shots]
        return Adaptation(prefix=self.instruction + context.fmt.demonstrations(examples))


@dataclass
class GreedyScorer:
    """Greedy exact match under each role: whether greedy decoding would write the canonical answer and its
    delimiter, read off one teacher-forced pass (the backend's AnswerScore.greedy). Accuracy per role; delta =
    learner - control (a toy: no interval, ci_low = ci_high = delta)."""
    batch_size: int = 8

    def identity(self) -> dict:
        return {"name": "toy-greedy"}

    def validate(self, learner: Any) -> None:
        """Every learner can be scored greedily."""

    def stages(self, roles: Roles) -> list[Stage]:
        return [Stage("toy-greedy", role, {"scorer": self.identity()})
                for role in roles.distinct(roles.base, roles.control, roles.learner)]

    def _greedy(self, view: SkillView, role: Any) -> dict:
        with view.open(role) as (model, prefix):
            requests = [(view.fmt.prompt(e, prefix), view.fmt.target(e.answer)) for e in view.examples]
            scores = model.score(requests, batch_size=self.batch_size, desc=None)
        return {"prefix_chars": len(prefix), "greedy": [int(s.greedy) for s in scores]}

    def compare(self, view: SkillView) -> tuple[dict, list[dict]]:
        found = {s.role.id: view.record(s, lambda r=s.role: self._greedy(view, r)) for s in self.stages(view.roles)}
        roles = view.roles
        got = {name: found[role.id] for name, role in
               (("base", roles.base), ("control", roles.control), ("learner", roles.learner))}
        acc = {name: sum(g["greedy"]) / len(g["greedy"]) for name, g in got.items()}
        delta = acc["learner"] - acc["control"]
        row = {"test_skill": view.test_skill, "n": len(view.examples), "delta": delta, "ci_low": delta,
               "ci_high": delta, **{f"acc_{name}": value for name, value in acc.items()},
               **{f"prefix_chars_{name}": g["prefix_chars"] for name, g in got.items()}}
        questions = [{"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                      **{f"greedy_{name}": g["greedy"][i] for name, g in got.items()}}
                     for i, e in enumerate(view.examples)]
        return row, questions
