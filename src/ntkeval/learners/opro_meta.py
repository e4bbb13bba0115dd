"""OPRO's text side (Yang et al. 2023, "Large Language Models as Optimizers"): the meta prompt that shows the
optimizer model the best instructions so far with their scores and a few solved train questions, the reading of the
instructions it proposes, and which instructions stay in the meta prompt. Pure functions on text, no model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Bump when the meta prompt's text or the reading of proposals changes: it keys every cached optimisation.
META_VERSION = 1
SLOT = "<INS>"  # where the instruction goes in an exemplar's input, as in the paper's meta prompt

# The paper's meta prompt for GSM8K (its Figure 3), said in fewer words so a 135M model keeps the thread: scored
# instructions in ascending order, exemplars with the instruction's place marked, the call for a new one in brackets.
HEADER = "Here are instructions with their scores, in ascending order. A higher score is better."
EXEMPLARS = (f"Each instruction is placed where {SLOT} is in an input like these. The score is the chance, in "
             "percent, that the model then writes the output shown.")
CALL = "Write a new instruction that is different from the ones above and has a score as high as possible. " \
       "Write it in square brackets."
OPEN, CLOSE = "[", "]"  # the meta prompt ends with OPEN, so a proposal ends where the model writes CLOSE
MARKUP = "[]\"'`“”‘’ "  # brackets and quotes a proposal may be wrapped in (stripped from its ends only)


@dataclass(frozen=True)
class Scored:
    """One instruction of the optimisation with its score (mean p(correct) on the train batch, in [0, 1])."""
    round: int          # 0: the starting instruction; 1..rounds: proposed in that round
    instruction: str
    score: float


def meta_prompt(kept: Sequence[Scored], exemplars: Sequence[tuple[str, str]]) -> str:
    """The optimizer model's prompt: `kept` in ascending order of score (the best last, nearest the call, as the
    paper orders them), then the (input, output) exemplars, then the call, ending in an open bracket. Scores are
    percentages to three significant digits: the paper's whole-number accuracies would show a small model's
    p(correct), often well under 1%, as a row of zeros."""
    scored = "".join(f"text:\n{s.instruction}\nscore:\n{100 * s.score:.3g}\n\n"
                     for s in sorted(kept, key=lambda s: s.score))
    shown = "".join(f"input:\n{given}\noutput:\n{wanted}\n\n" for given, wanted in exemplars)
    middle = f"{EXEMPLARS}\n\n{shown}" if exemplars else ""
    return f"{HEADER}\n\n{scored}{middle}{CALL}\n{OPEN}"


def read_proposal(text: str, end: str, max_chars: int) -> str | None:
    """The instruction in one sampled completion (the text after the meta prompt's open bracket), or None: text up
    to the closing bracket, its bracket and quote markup stripped, whitespace collapsed to one line; None when
    empty, longer than `max_chars`, or cut off by the token limit before the bracket closed (an unfinished
    sentence is no proposal)."""
    closed = CLOSE in text
    if not closed and end == "length":
        return None
    instruction = " ".join(text.split(CLOSE, 1)[0].strip(MARKUP).split())
    if not instruction or len(instruction) > max_chars:
        return None
    return instruction


def read_proposals(completions, seen: set[str], max_chars: int) -> tuple[list[str], int]:
    """The new instructions among one round's completions (in sampling order, each once, none already in `seen`)
    and how many completions were dropped (unreadable, over-long, or a duplicate)."""
    fresh: list[str] = []
    for completion in completions:
        instruction = read_proposal(completion.text, completion.end, max_chars)
        if instruction is not None and instruction not in seen and instruction not in fresh:
            fresh.append(instruction)
    return fresh, len(completions) - len(fresh)


def best(history: Sequence[Scored], keep: int) -> list[Scored]:
    """The `keep` best instructions of `history`, best first; on a tie the earlier one wins, so a later instruction
    displaces one only by scoring strictly higher (the starting instruction stays best unless beaten)."""
    order = sorted(range(len(history)), key=lambda i: (-history[i].score, i))
    return [history[i] for i in order[:keep]]
