"""scorer=process, process supervision with an exact checker (Lightman et al. 2023, on synthetic data): each sampled
completion (the samples stage every sampling scorer shares) is right for the right reasons when the data set's
check_steps accepts every step it wrote (read by the answer format) AND its final answer is right. Per role the
fraction of such completions is reported beside final-answer accuracy; the kernel entry is its difference, learner -
control, with its bounded interval over questions: the kernel of "right for the right reasons".

Needs a reasoning format that writes steps (cot, work; a program's completion has no written steps, so under pot it
counts as not checked right) and a data set that checks steps (ntkeval.data.base.ReasoningDataSet.check_steps); a
question whose steps the data set cannot check (None) is a one-line error, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from ntkeval.errors import UserError
from ntkeval.scorers.paired import mean, paired_entry
from ntkeval.scorers.reading import is_direct
from ntkeval.scorers.sample_stages import EveryRoleSampled
from ntkeval.scorers.sampled import program_failures, unparsable


@dataclass
class ProcessScorer(EveryRoleSampled):
    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128       # steps need room; equal settings share samples with sampled, majority, verify
    stop: list[str] | None = None   # None: the answer format's stop strings
    program_timeout_s: float = 5.0  # sandbox limits for program answers (pot, hybrid)
    program_memory_mb: int = 512

    def __post_init__(self):
        self._settings_checked()

    def identity(self) -> dict:
        return {"name": "process", **self.sampling_identity()}

    def validate_data(self, dataset, fmt=None) -> None:
        """Before any model loads: the data set must check steps and the format must write them."""
        if not callable(getattr(dataset, "check_steps", None)):
            raise UserError(f"scorer=process needs a data set that checks reasoning steps (check_steps); "
                            f"dataset={getattr(dataset, 'name', type(dataset).__name__)} has none; valid: arith, "
                            "khanskill, or scorer=sampled / majority")
        if fmt is not None:
            direct_problem(fmt)

    def bind_format(self, fmt) -> None:
        direct_problem(fmt)
        super().bind_format(fmt)

    def compare(self, view) -> tuple[dict, list[dict]]:
        spec, fmt = self.view_settings(view)
        direct_problem(fmt)
        self.validate_data(view.dataset)
        rows_of = self.draws(view, spec)
        checked = {name: [steps_right(view, fmt, e, q["completions"]) for e, q in zip(view.examples, rows)]
                   for name, rows in rows_of.items()}
        # per role, per question: fractions of completions right for the right reasons, answer right, steps right
        process = {name: [mean([s and c["correct"] for s, c in zip(ok, q["completions"])])
                          for ok, q in zip(checked[name], rows_of[name])] for name in rows_of}
        accuracy = {name: [mean([c["correct"] for c in q["completions"]]) for q in rows_of[name]] for name in rows_of}
        steps = {name: [mean(ok) for ok in checked[name]] for name in rows_of}
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": spec.n,
               **{f"p_{name}": mean(process[name]) for name in rows_of},
               **paired_entry(process["learner"], process["control"], view.seed),
               **{f"acc_{name}": mean(accuracy[name]) for name in rows_of},
               **{f"steps_right_{name}": mean(steps[name]) for name in rows_of},
               **{f"unparsable_{name}": unparsable(rows) for name, rows in rows_of.items()},
               **program_failures(**rows_of)}
        questions = [{"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                      **{f"p_{name}": process[name][i] for name in rows_of},
                      "delta": process["learner"][i] - process["control"][i],
                      **{f"acc_{name}": accuracy[name][i] for name in ("learner", "control")},
                      **{f"steps_right_{name}": steps[name][i] for name in ("learner", "control")}}
                     for i, e in enumerate(view.examples)]
        return row, questions


def steps_right(view, fmt, example, completions: list[dict]) -> list[bool]:
    """Whether every step each completion wrote is right, by the data set's exact checker."""
    kind = view.dataset.answer_kind(example)
    out = []
    for c in completions:
        verdict = view.dataset.check_steps(example, tuple(fmt.read(c["text"], kind).steps))
        if verdict is None:
            raise UserError(f"scorer=process: data set {getattr(view.dataset, 'name', '?')!r} cannot check the steps "
                            f"of question {example.id!r} (skill {example.skill!r}); valid: test skills whose steps "
                            "it checks, or scorer=sampled / majority")
        out.append(bool(verdict))
    return out


def direct_problem(fmt) -> None:
    if is_direct(fmt):
        raise UserError("scorer=process needs a reasoning format that writes steps; format=direct writes none; "
                        "valid: format=cot, work (or hybrid, pot: programs count as unchecked)")

