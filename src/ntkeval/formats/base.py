"""What an answer format is: how a worked solution is written after a question (direct, chain-of-thought, program,
work memory, hybrid) and how the answer is read back out of a completion in that format.

A data set supplies the content (a `Solution`: the steps of one problem, its answer and a program that prints it);
the format supplies the form. So demonstrations, tuning texts, scoring prompts and the reading of completions all
follow one `format` choice, orthogonal to the learner: a learner and its control always write in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ntkeval.data.base import Example


@dataclass(frozen=True)
class Step:
    """One step of a worked solution: a computation and its result, e.g. Step("41 + 55", "96")."""
    expression: str   # what is computed, in Python-readable arithmetic where the data set can ("41 + 55", "96 / 4")
    value: str        # its result as the data set writes answers ("96", "3/4")
    text: str = ""    # optional words around it for formats that want them ("Add the apples:")


@dataclass(frozen=True)
class Solution:
    """A worked solution of one example, from the data set's own structure (never from a model)."""
    steps: tuple[Step, ...]   # in order; the last step's value is the answer (a problem without steps has none)
    answer: str               # the final answer, as Example.answer writes it
    program: str | None = None  # Python source that prints the answer and nothing else (program-of-thought)
    computational: bool = True  # a program is the natural solution (hybrid writes the program, else the steps)


@dataclass(frozen=True)
class Reading:
    """What a completion in some format says: the final answer text (None: none readable), the program to run
    instead (pot, hybrid's program branch: its stdout is the answer), and the steps as written (for process checks)."""
    answer: str | None
    program: str | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)


@runtime_checkable
class AnswerFormat(Protocol):
    name: str            # direct, cot, pot, work, hybrid: how results call it
    reasoning: bool      # False only for direct: the completion is the bare answer

    def identity(self) -> dict: ...  # what determines its texts (cache keys; {} for direct: today's keys meant it)

    def instruction(self) -> str: ...  # the line placed before every prompt ("" for direct by default)

    def target(self, example: Example, solution: Solution) -> str: ...  # the text after the prompt (demos, tuning)

    def stop(self) -> tuple[str, ...]: ...  # where a sampled completion in this format ends

    def read(self, completion: str, kind: str) -> Reading: ...  # the answer (or program) and steps of a completion
