"""Reading sampled completions in any answer format (ntkeval.formats): the answer the format reads, or for a program
the answer its output gives once run in the sandbox, and the sampling settings every scorer that samples shares.

    answers(texts, kinds, fmt, limits)  -> [{"answer", "unparsable"(, "program_status", "program_output")}, ...]

Direct (no format, or a format with reasoning False read by final_answer) reads exactly as before formats existed,
so its verdicts, stage keys and golden numbers are today's. A program is untrusted: every program of one call runs
in one sandbox batch (ntkeval.sandbox.run_programs), and one that fails in any way (error, timeout, memory, output
limit, forbidden) gives no answer: a wrong answer with its status recorded, never a failed cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ntkeval.backends.base import SamplingSpec
from ntkeval.data.answer_kinds import equivalent
from ntkeval.data.answer_reading import final_answer, readable
from ntkeval.errors import UserError
from ntkeval.sandbox import run_programs

DIRECT_STOP = ("\n",)  # direct's stop strings: today's default, so direct keys stay what they were
READING_VERSION = 1    # bump when reading a reasoning format's completion changes (direct's rule is PARSER_VERSION)
OUTPUT_KEPT = 200      # characters of a program's stdout kept with its verdict (to see why it was wrong)

ProgramRunner = Callable[..., Sequence[Any]]  # run_programs(programs, timeout_s=, memory_mb=) -> [ProgramRun, ...]


@dataclass(frozen=True)
class ProgramLimits:
    """The sandbox limits a program answer runs under: a program that needs more is a wrong answer, so they key it."""
    timeout_s: float = 5.0   # wall-clock seconds per program
    memory_mb: int = 512     # address space per program

    def __post_init__(self):
        if not isinstance(self.timeout_s, (int, float)) or isinstance(self.timeout_s, bool) or self.timeout_s <= 0:
            raise UserError(f"scorer.program_timeout_s={self.timeout_s!r} is invalid; valid: a number of seconds > 0")
        if not isinstance(self.memory_mb, int) or isinstance(self.memory_mb, bool) or self.memory_mb < 32:
            raise UserError(f"scorer.program_memory_mb={self.memory_mb!r} is invalid; valid: an integer >= 32 (MB)")

    def identity(self) -> dict:
        return {"timeout_s": self.timeout_s, "memory_mb": self.memory_mb}


def answer_format(view) -> Any:
    """The cell's answer format, None for direct (a view from before formats existed has none)."""
    return getattr(view, "format", None)


def is_direct(fmt) -> bool:
    return fmt is None or not getattr(fmt, "reasoning", False)


def reading_parts(fmt, limits: ProgramLimits) -> dict:
    """What a reasoning format adds to the key of a stage holding verdicts: its identity, the reading rule and the
    sandbox limits. Nothing for direct, whose keys are today's."""
    if is_direct(fmt):
        return {}
    return {"reading": {"format": fmt.identity(), "version": READING_VERSION, "programs": limits.identity()}}


def sandbox_runner() -> ProgramRunner:
    """ntkeval.sandbox.run_programs (tests put a fake in its place); its workers start only when programs run."""
    return run_programs


def answers(texts: Sequence[str], kinds: Sequence[str], fmt, limits: ProgramLimits,
            run: ProgramRunner | None = None) -> list[dict]:
    """The reading of each completion text as an answer of its kind; programs run in one batch."""
    out: list[dict] = []
    programs: list[tuple[int, str]] = []
    for i, (text, kind) in enumerate(zip(texts, kinds, strict=True)):
        if is_direct(fmt):  # today's rule exactly, whatever a direct format's read() would say
            out.append(_answer(final_answer(text, kind)))
            continue
        reading = fmt.read(text, kind)
        if reading.program is not None:
            programs.append((i, reading.program))
            out.append({})
        else:
            given = reading.answer.strip() if reading.answer is not None else None
            out.append(_answer(given if given and readable(given, kind) else None))
    if programs:
        runs = (run or sandbox_runner())([p for _, p in programs], timeout_s=limits.timeout_s,
                                         memory_mb=limits.memory_mb)
        for (i, _), ran in zip(programs, runs, strict=True):
            ok = ran.status == "ok"
            given = final_answer(ran.stdout, kinds[i]) if ok else None
            out[i] = {"answer": given, "unparsable": int(ok and given is None), "program_status": ran.status,
                      "program_output": ran.stdout[:OUTPUT_KEPT]}
    return out


def _answer(given: str | None) -> dict:
    return {"answer": given, "unparsable": int(given is None)}


def answer_groups(given: Sequence[str | None], kind: str) -> list[list[int]]:
    """The completions' indices grouped by equal answers (equal in value as answers of `kind`: "0.5" and "1/2"
    vote together), groups in first-seen order; unreadable answers (None) are in no group: they abstain."""
    groups: list[list[int]] = []
    for i, answer in enumerate(given):
        if answer is None:
            continue
        for group in groups:
            first = given[group[0]]
            if answer == first or equivalent(answer, first, kind):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


class SamplingSettings:
    """What every scorer that samples shares, mixed into its dataclass (fields n, temperature, top_p,
    max_new_tokens, stop, program_timeout_s, program_memory_mb): the sampling spec with the stop strings resolved
    against the answer format (stop None: the format's; an explicit list wins) and the sandbox limits.

    The cell binds its format (bind_format, as it binds the model to a learner) before it asks for identity() or
    stages(), so both say the stop strings really used; unbound means direct."""

    format: Any = None

    def _settings_checked(self) -> None:
        if self.stop is not None and (isinstance(self.stop, str) or not all(isinstance(s, str) for s in self.stop)):
            raise UserError(f"scorer.stop={self.stop!r} is invalid; valid: null (the answer format's stop strings) "
                            "or a list of non-empty strings, e.g. ['\\n']")
        self.limits = ProgramLimits(self.program_timeout_s, self.program_memory_mb)
        self.spec = self.spec_for(self.format)

    def bind_format(self, fmt) -> None:
        """The answer format the cell samples in: its stop strings (unless scorer.stop says otherwise)."""
        self.format = fmt
        self.spec = self.spec_for(fmt)

    def spec_for(self, fmt) -> SamplingSpec:
        stop = self.stop if self.stop is not None else (DIRECT_STOP if fmt is None else tuple(fmt.stop()))
        return SamplingSpec(self.n, self.temperature, self.top_p, self.max_new_tokens, tuple(stop))

    def sampling_identity(self) -> dict:
        """The spec's identity, plus the sandbox limits where a reasoning format's answers may be programs."""
        limits = {} if is_direct(self.format) else {"programs": self.limits.identity()}
        return {**self.spec.identity(), **limits}

    def view_settings(self, view) -> tuple[SamplingSpec, Any]:
        """(spec, format) for one test skill: the view's format decides (the one the cell bound, once it binds)."""
        fmt = answer_format(view)
        return (self.spec if fmt is self.format else self.spec_for(fmt)), fmt
