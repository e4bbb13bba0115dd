"""The final-answer parser: the usual ways a model writes an answer, and None (unparsable) for what is no answer."""

import pytest

from ntkeval.data.answer_reading import final_answer, readable


@pytest.mark.parametrize("completion, kind, want", [
    (" 42", "integer", "42"),
    ("42\n", "integer", "42"),
    ("   42  ", "integer", "42"),
    (" 42.", "integer", "42"),
    (" 42!", "integer", "42"),
    (" -7", "integer", "-7"),
    (" The answer is 42", "integer", "42"),
    (" The answer is -7.", "integer", "-7"),
    (" So the final answer is: 1,200.", "integer", "1,200"),
    (" 12 + 30 = 42, so the answer is 42!", "integer", "42"),
    (" Answer: **42**", "integer", "42"),
    (" $42$", "integer", "42"),
    (" \\boxed{96}", "integer", "96"),
    (" 41 + 55 = 96", "integer", "96"),       # a worked line ends with its result
    (" 7 apples", "integer", "7"),
    (" 3.5", "integer", "3.5"),               # readable, so wrong rather than unparsable
    (" 3/6", "fraction", "3/6"),
    (" Answer: 0.5", "decimal", "0.5"),
    (" 45%", "percent", "45%"),
    (" 2x+3", "expression", "2x+3"),
    (" x = 5", "equation", "x = 5"),
    (" yes.", "text", "yes"),
])
def test_reads_the_usual_answer_forms(completion, kind, want):
    assert final_answer(completion, kind) == want


@pytest.mark.parametrize("completion, kind", [
    ("", "integer"),
    ("   ", "integer"),
    (" forty-two", "integer"),
    (" I do not know.", "integer"),
    (" The answer is", "integer"),
    (" x7", "integer"),                       # a number glued inside a word is not an answer
    (" ???", "expression"),
])
def test_no_answer_is_none_not_a_wrong_number(completion, kind):
    assert final_answer(completion, kind) is None


def test_the_answer_after_the_last_marker_wins():
    assert final_answer(" The answer is 5. No wait, the answer is 6.", "integer") == "6"


def test_readable_follows_the_equivalence_module():
    assert readable("12", "integer") and readable("0.25", "integer") and not readable("twelve", "integer")
    assert readable("acute", "text") and not readable("", "text")
