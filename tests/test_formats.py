"""Answer formats: each writes a worked solution as its documented text and reads its own writing back (answer,
program, steps); the direct format is today's text exactly, so its keys and numbers are unchanged."""

from __future__ import annotations

import pytest

from ntkeval.data.base import Example
from ntkeval.formats.base import AnswerFormat, Reading, Solution, Step
from ntkeval.formats.direct import DirectFormat
from ntkeval.formats.reasoning import (
    CotFormat,
    HybridFormat,
    PotFormat,
    WorkFormat,
    read_program,
)
from ntkeval.prompts import PromptFormat

EXAMPLE = Example("ops/question/test/0", "ops/question", "What is (12+7)*3?", "57")
SOLUTION = Solution((Step("12 + 7", "19"), Step("19 * 3", "57")), "57", "x1 = 12 + 7\nx2 = x1 * 3\nprint(x2)")
ONE_STEP = Solution((Step("41 + 55", "96"),), "96", "x1 = 41 + 55\nprint(x1)", computational=False)
ALL = (DirectFormat(), CotFormat(), PotFormat(), WorkFormat(), HybridFormat())


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_every_format_is_an_answer_format_with_a_stop_and_an_instruction(fmt):
    assert isinstance(fmt, AnswerFormat)
    assert fmt.stop() and all(isinstance(s, str) and s for s in fmt.stop())
    assert fmt.reasoning is (fmt.name != "direct")
    assert bool(fmt.instruction()) is fmt.reasoning  # direct's default line is empty: today's prompts


def test_direct_is_todays_text_and_keys():
    fmt, prompt = DirectFormat(), PromptFormat()
    assert fmt.identity() == {}
    assert prompt.prompt(EXAMPLE) + prompt.target(fmt.target(EXAMPLE, SOLUTION)) == "Q: What is (12+7)*3?\nA: 57\n"
    assert prompt.with_instruction(fmt.instruction()).identity() == PromptFormat().identity()
    assert fmt.read(" 57\n", "integer") == Reading("57")
    assert DirectFormat("Answer with a number.").identity() == {"name": "direct", "instruction": "Answer with a number."}


def test_cot_writes_numbered_steps_then_the_answer_and_reads_them_back():
    text = CotFormat().target(EXAMPLE, SOLUTION)
    assert text == "1. 12 + 7 = 19\n2. 19 * 3 = 57\nThe answer is 57."
    reading = CotFormat().read(" " + text, "integer")
    assert reading == Reading("57", steps=("12 + 7 = 19", "19 * 3 = 57"))
    assert CotFormat().read(" 1. 12 + 7 = 19\n2. 19 * 3 =", "integer").answer is None  # cut before its answer


def test_work_writes_a_scratchpad_and_reads_the_answer_after_it():
    text = WorkFormat().target(EXAMPLE, SOLUTION)
    assert text == "<work>\n12 + 7 = 19\n19 * 3 = 57\n</work>\nThe answer is 57."
    assert WorkFormat().read(" " + text, "integer") == Reading("57", steps=("12 + 7 = 19", "19 * 3 = 57"))
    open_pad = WorkFormat().read(" <work>\n12 + 7 = 19\n19 * 3 = 57", "integer")
    assert open_pad == Reading(None, steps=("12 + 7 = 19", "19 * 3 = 57"))  # no answer after an unclosed pad
    assert WorkFormat().read(" The answer is 57.", "integer").answer == "57"


def test_pot_writes_a_fenced_program_and_reads_the_program_not_an_answer():
    text = PotFormat().target(EXAMPLE, SOLUTION)
    assert text == "```python\nx1 = 12 + 7\nx2 = x1 * 3\nprint(x2)\n```"
    cut = " " + text.split("\n```")[0]  # what sampling keeps: the stop string "\n```" is cut off
    assert PotFormat().read(cut, "integer") == Reading(None, program="x1 = 12 + 7\nx2 = x1 * 3\nprint(x2)")
    assert PotFormat().read(" " + text, "integer").program == "x1 = 12 + 7\nx2 = x1 * 3\nprint(x2)"
    assert PotFormat().read(" 57", "integer") == Reading(None, program=None)
    assert read_program("```\nprint(1)\n```") == "print(1)"
    with pytest.raises(ValueError, match="no program"):
        PotFormat().target(EXAMPLE, Solution((), "57"))


def test_hybrid_writes_programs_for_computational_solutions_and_steps_otherwise_and_reads_both():
    fmt = HybridFormat()
    assert fmt.target(EXAMPLE, SOLUTION) == PotFormat().target(EXAMPLE, SOLUTION)
    assert fmt.target(EXAMPLE, ONE_STEP) == "1. 41 + 55 = 96\nThe answer is 96."
    assert fmt.read(" ```python\nprint(96)", "integer") == Reading(None, program="print(96)")
    assert fmt.read(" 1. 41 + 55 = 96\nThe answer is 96.", "integer") == Reading("96", steps=("41 + 55 = 96",))


def test_reasoning_identities_differ_by_format_and_instruction():
    ids = [f.identity() for f in ALL[1:]]
    assert len({str(i) for i in ids}) == 4
    assert CotFormat("Think.").identity() != CotFormat().identity()


def test_the_instruction_line_leads_every_prompt_once_and_no_demonstration():
    prompt = PromptFormat().with_instruction("Think step by step.")
    demo = prompt.demonstrations([EXAMPLE], ["1. 12 + 7 = 19\nThe answer is 57."])
    assert demo == "Q: What is (12+7)*3?\nA: 1. 12 + 7 = 19\nThe answer is 57.\n\n"
    assert prompt.prompt(EXAMPLE, demo) == "Think step by step.\n" + demo + "Q: What is (12+7)*3?\nA:"
    assert prompt.identity()["instruction"] == "Think step by step."
