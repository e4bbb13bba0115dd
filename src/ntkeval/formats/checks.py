"""Preflight checks of a cell's answer format, before any model loads: the data set writes the format for every
skill the learner and its control need solutions of, and a program format has a sandbox that works here."""

from __future__ import annotations

from ntkeval.errors import UserError
from ntkeval.formats.writing import check_format

try:
    from ntkeval.sandbox import sandbox_problem
except ImportError:  # the sandbox package is built beside this one; until it lands, program formats go unchecked
    sandbox_problem = None

PROGRAM_FORMATS = ("pot", "hybrid")  # formats whose answers come from running the model's program


def format_checks(cell) -> None:
    """The answer format can be written and read here: the data set writes its solutions for every skill the learner
    or its control writes demonstrations or tuning texts of, a program format has a working sandbox, and a scorer
    that needs more of the data set (backward questions, step checks) gets it (its validate_data), and a learner that
    needs more of the format or the data set (checkable answers, augmentations) gets it (its validate_format)."""
    validate_data = getattr(cell.scorer, "validate_data", None)
    if callable(validate_data):
        validate_data(getattr(cell, "tests_from", cell.dataset))  # the data set the test questions come from
    for learner in (cell.learner, cell.learner.control()):  # a learner that needs more of the format (tune-rft)
        validate_format = getattr(learner, "validate_format", None)
        if callable(validate_format):
            validate_format(cell.format, cell.dataset, cell.train_skill)
    if not cell.format.reasoning:
        return
    skills = []
    for learner in (cell.learner, cell.learner.control()):
        needs = getattr(learner, "solution_skills", None)  # a user's learner without it: its train skill
        skills += needs(cell.dataset, cell.train_skill) if callable(needs) else [cell.train_skill] if learner else []
    check_format(cell.format, cell.dataset, dict.fromkeys(skills))
    if cell.format.name in PROGRAM_FORMATS and sandbox_problem is not None:
        why = sandbox_problem()
        if why:
            raise UserError(f"format={cell.format.name} runs the model's programs, and {why}; expected a system "
                            "where the sandbox works, or format=cot / work / direct")
