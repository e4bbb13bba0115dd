"""The direct answer format, today's "Q: ... A: 42": the completion is the bare answer (no reasoning written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ntkeval.data.answer_reading import final_answer
from ntkeval.data.base import Example
from ntkeval.formats.base import Reading, Solution


@dataclass(frozen=True)
class DirectFormat:
    name: ClassVar[str] = "direct"
    reasoning: ClassVar[bool] = False
    instruction_line: str = ""  # "" by default, so today's prompts, cache keys and golden numbers stay as they were

    def identity(self) -> dict:
        # {} for the default: every key made before formats existed meant exactly this format
        return {} if not self.instruction_line else {"name": self.name, "instruction": self.instruction_line}

    def instruction(self) -> str:
        return self.instruction_line

    def target(self, example: Example, solution: Solution) -> str:
        return solution.answer

    def stop(self) -> tuple[str, ...]:
        return ("\n",)  # the prompt's answer delimiter: a bare answer is one line

    def read(self, completion: str, kind: str) -> Reading:
        return Reading(final_answer(completion, kind))
