"""The reasoning answer formats: chain-of-thought (numbered steps), work memory (Galactica's <work> scratchpad),
program-of-thought (a fenced Python program whose output is the answer) and hybrid (MAmmoTH: a program where the
data set calls the problem computational, else numbered steps).

Each writes a data set's Solution as the text that follows the prompt's "A:" and reads a completion in the same form
back (ntkeval.formats.base.Reading). The prompt's answer template and delimiter wrap the written text as they wrap a
bare answer (ntkeval.prompts.PromptFormat.target), so demonstrations end with the delimiter and the separator: a
blank line, which is where a sampled completion stops.

    CotFormat().target(example, solution)   # "1. 41 + 55 = 96\\n2. 96 / 4 = 24\\nThe answer is 24."
    PotFormat().read(" ```python\\nprint(41 + 55)", "integer")   # Reading(answer=None, program="print(41 + 55)")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from ntkeval.data.answer_reading import final_answer
from ntkeval.data.base import Example
from ntkeval.formats.base import Reading, Solution, Step

VERSION = 1  # bump when a format writes or reads differently; part of every reasoning format's identity
ANSWER_LINE = "The answer is {answer}."
FENCE = "```"
_NUMBERED = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s*(.*\S)", re.IGNORECASE)
_PROGRAM = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:\n?```|\Z)", re.DOTALL | re.IGNORECASE)
_STEPS_STOP = ("\n\n", "\nQ:")  # a demonstration ends with a blank line (delimiter + separator); the next question


def step_line(step: Step) -> str:
    """One step as written: its words, then "expression = value" (a data set's free-text step has no value)."""
    computed = f"{step.expression} = {step.value}" if step.value else step.expression
    return " ".join(part for part in (step.text, computed) if part)


def last_line_answer(text: str, kind: str) -> str | None:
    """The answer a worked solution states on its last non-empty line (None: that line gives none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return final_answer(lines[-1], kind) if lines else None


@dataclass(frozen=True)
class _Format:
    name: ClassVar[str] = ""
    reasoning: ClassVar[bool] = True
    instruction_line: str = ""

    def identity(self) -> dict:
        return {"name": self.name, "instruction": self.instruction_line, "stop": list(self.stop()),
                "version": VERSION}

    def instruction(self) -> str:
        return self.instruction_line

    def stop(self) -> tuple[str, ...]:
        return _STEPS_STOP


@dataclass(frozen=True)
class CotFormat(_Format):
    """Numbered steps, then "The answer is X." (Wei et al. 2022)."""
    name: ClassVar[str] = "cot"
    instruction_line: str = 'Solve it step by step: number each step, then end with "The answer is" and the answer.'

    def target(self, example: Example, solution: Solution) -> str:
        steps = [f"{i}. {step_line(step)}" for i, step in enumerate(solution.steps, start=1)]
        return "\n".join([*steps, ANSWER_LINE.format(answer=solution.answer)])

    def read(self, completion: str, kind: str) -> Reading:
        lines = [line for line in completion.splitlines() if line.strip()]
        steps = tuple(m.group(1) for line in lines if (m := _NUMBERED.match(line)))
        # a last line that is still a numbered step was cut off before the answer line: it states no answer
        stated = bool(lines) and _NUMBERED.match(lines[-1]) is None
        return Reading(last_line_answer(completion, kind) if stated else None, steps=steps)


@dataclass(frozen=True)
class WorkFormat(_Format):
    """Galactica's work memory: calculator lines inside <work> ... </work>, then the answer."""
    name: ClassVar[str] = "work"
    instruction_line: str = ('Write your calculations inside <work> and </work>, one per line, then "The answer is" '
                             "and the answer.")

    def target(self, example: Example, solution: Solution) -> str:
        lines = ["<work>", *(step_line(step) for step in solution.steps), "</work>"]
        return "\n".join([*lines, ANSWER_LINE.format(answer=solution.answer)])

    def read(self, completion: str, kind: str) -> Reading:
        opened, closed = completion.find("<work>"), completion.rfind("</work>")
        if opened == -1 and closed == -1:  # no scratchpad at all: the answer is still on the last line
            return Reading(last_line_answer(completion, kind))
        start = opened + len("<work>") if opened != -1 else 0
        if closed < start:  # a scratchpad left open was cut off before its answer
            return Reading(None, steps=_lines(completion[start:]))
        return Reading(last_line_answer(completion[closed + len("</work>"):], kind),
                       steps=_lines(completion[start:closed]))


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_program(completion: str) -> str | None:
    """The first fenced program of a completion (the closing fence may be cut off by the stop string)."""
    match = _PROGRAM.search(completion)
    return match.group(1).strip("\n") if match and match.group(1).strip() else None


def program_text(solution: Solution) -> str:
    if solution.program is None:
        raise ValueError(f"no program in the solution whose answer is {solution.answer!r}: the data set cannot "
                         "write this format (its format_problem should have said so at preflight)")
    return f"{FENCE}python\n{solution.program.strip()}\n{FENCE}"


@dataclass(frozen=True)
class PotFormat(_Format):
    """Program-of-thought (Chen et al. 2022): a fenced Python program that prints the answer; the answer is what the
    program prints in the sandbox, so `read` returns the program and no answer."""
    name: ClassVar[str] = "pot"
    instruction_line: str = "Write a short Python program that prints the answer, in a ```python block."

    def target(self, example: Example, solution: Solution) -> str:
        return program_text(solution)

    def stop(self) -> tuple[str, ...]:
        return ("\n" + FENCE, "\nQ:")  # the closing fence (cut off; read_program allows it), the next question

    def read(self, completion: str, kind: str) -> Reading:
        return Reading(None, program=read_program(completion))


@dataclass(frozen=True)
class HybridFormat(_Format):
    """MAmmoTH's hybrid: a program where the data set marks the solution computational, numbered steps otherwise;
    `read` recognises either (a fence means a program)."""
    name: ClassVar[str] = "hybrid"
    instruction_line: str = ('Write a short Python program that prints the answer in a ```python block, or number '
                             'your steps and end with "The answer is" and the answer.')

    def target(self, example: Example, solution: Solution) -> str:
        return program_text(solution) if solution.computational else CotFormat().target(example, solution)

    def stop(self) -> tuple[str, ...]:
        return ("\n" + FENCE, *_STEPS_STOP)

    def read(self, completion: str, kind: str) -> Reading:
        if FENCE in completion:
            return Reading(None, program=read_program(completion))
        return CotFormat().read(completion, kind)
