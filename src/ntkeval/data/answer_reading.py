"""Reading the final answer out of a generated completion.

    final_answer(" 42\n", "integer")                          # "42"
    final_answer(" The answer is -7.", "integer")              # "-7"
    final_answer(" 12 + 30 = 42, so the answer is: 42!", "integer")  # "42"
    final_answer(" forty-two", "integer")                      # None: counted as unparsable, never as wrong

A completion is read in three steps: the text after the last "answer is" / "answer:" marker (or the whole text),
cleaned of the usual wrapping (spaces, trailing punctuation, **bold**, $...$, \\boxed{...}); if that is a readable
answer of the expected kind it is the answer; for numeric kinds the last number in it is tried next (worked
solutions end with their result). Readable means what `ntkeval.data.answer_kinds` accepts for the kind, so the parser and
the equivalence check never disagree about what an answer is.
"""

from __future__ import annotations

import re

from ntkeval.data.answer_kinds import equivalent

NUMERIC_KINDS = ("integer", "decimal", "fraction", "lowest-terms", "percent")
_MARKER = re.compile(r"(?:final\s+answer|answer)\s*(?:is|:|=)\s*:?", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{([^{}]*)\}")
_NUMBER = re.compile(r"(?<![\d)\w])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|(?<![\d)\w])-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?%?")
_TRAILING = ".,;:!?"


def _clean(text: str) -> str:
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    text = text.strip()
    for _ in range(3):  # peel nested wrapping such as "**$42$**."
        text = text.strip().rstrip(_TRAILING).strip()
        for mark in ("**", "$", "`"):
            if len(text) > 2 * len(mark) - 1 and text.startswith(mark) and text.endswith(mark):
                text = text[len(mark):-len(mark)]
    return text.strip()


def readable(answer: str, kind: str) -> bool:
    """Whether `answer` is written as an answer of `kind` at all, right or wrong: any number reads for a numeric
    kind (3.5 to an integer question is a wrong answer, not an unreadable one)."""
    kinds = (kind, "decimal") if kind in NUMERIC_KINDS else (kind,)
    return bool(answer) and any(equivalent(answer, answer, k) for k in kinds)


def final_answer(completion: str, kind: str) -> str | None:
    """The final answer a completion gives, or None when it gives none that can be read as an answer of `kind`."""
    markers = list(_MARKER.finditer(completion))
    region = completion[markers[-1].end():] if markers else completion
    region = region.strip().splitlines()[0] if markers and region.strip() else region
    answer = _clean(region)
    if readable(answer, kind):
        return answer
    if kind in NUMERIC_KINDS:
        for number in reversed(_NUMBER.findall(region)):
            number = number.replace(" ", "")
            if readable(number, kind):
                return number
    return None
