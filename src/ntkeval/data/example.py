"""The record every data set produces: one question of one skill with its canonical answer."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    id: str        # stable and unique within a data set, e.g. "add/question/test/7"
    skill: str     # the skill it exercises, e.g. "add/question"
    question: str  # the surface text shown to the model, e.g. "What is 41+55?"
    answer: str    # the canonical answer as the model should write it, e.g. "96"
