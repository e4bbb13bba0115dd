"""tune-rft: rejection-sampling fine-tuning (RFT, Yuan et al. 2023). The untouched model writes k reasoning paths per
training question; the paths with the right answer and an equation list not seen before on that question are kept
and tuned on beside the data set's own worked solutions (the paper's D ∪ D'). Its control, tune-rft-wrong, tunes on
the same worked solutions plus as many of the model's own wrong paths, with the same steps, hyperparameters and
seed: both train on the model's own writing, and only whether that writing is right differs.

    ntkeval learner=tune-rft format=cot scorer=sampled pair.train=add/question

Both read one cached stage of samples ("rft-samples": drawn once, with few-shot demonstrations of other train
questions, read by the shared reader ntkeval.scorers.sample_stages.verdicts, programs run in the sandbox).
"""

from __future__ import annotations

import ast
import copy
import logging
import math
import random
import re
from collections import deque
from dataclasses import dataclass

from ntkeval.backends.base import SamplingSpec
from ntkeval.cache import Checked, stable_hash
from ntkeval.errors import UserError, choices_error
from ntkeval.formats.writing import written_answer, wrong_written_answer
from ntkeval.learners.base import Adaptation, AdaptationRecord
from ntkeval.learners.lora import LoraLearner
from ntkeval.scorers.reading import ProgramLimits, reading_parts
from ntkeval.scorers.sample_stages import (
    EQUIVALENCE_VERSION,
    PARSER_VERSION,
    samples_problem,
    verdicts,
)

log = logging.getLogger(__name__)
RFT_SAMPLES = "rft-samples"  # the stage-cache kind of the sampled paths (shared by tune-rft and its control)
SAMPLES_VERSION = 1    # bump when what an rft-samples entry holds changes
SELECTION_VERSION = 4  # (2: right answers with a wrong calculation are rejected; 3: paths without equations
# are told apart by their answers; 4: the control's wrong
# answers beyond the model's distinct wrong paths are the data set's, never repeats) bump when equations() or the kept/control selection changes: it changes what is tuned on
PATHS = ("correct", "incorrect")  # which of the model's paths join the references: tune-rft's, tune-rft-wrong's
PATH_COLUMNS = ["question", "path", "answer", "correct", "kept", "control_uses"]
_ARITHMETIC = re.compile(r"[0-9.()+\-*/×÷^%=\s]+")  # one run of arithmetic characters (linear: no backtracking)


def equations(reading) -> tuple[str, ...]:
    """The equation list of one path (a ntkeval.formats.base.Reading), what RFT tells paths apart by; whitespace
    removed everywhere.
    - A program (pot, hybrid's program branch): each top-level statement as Python writes it back (ast.unparse:
      comments and spacing gone), e.g. ("x1=82+77", "print(x1)"); a program that does not parse: its non-blank lines.
    - Written steps (cot, work, hybrid's steps): in each step, every maximal run of arithmetic characters (digits,
      . ( ) + - * / × ÷ ^ % = and spaces) holding an "=" and a digit, with a sentence's "." stripped from its ends:
      "Add them: 82 + 77 = 159." gives "82+77=159"; a step without "=" computes nothing and adds nothing.
    """
    if reading.program is not None:
        try:
            statements = [ast.unparse(node) for node in ast.parse(reading.program).body]
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # untrusted text: parse, never run
            statements = reading.program.splitlines()
        return tuple(s for s in (_squeeze(t) for t in statements) if s)
    found = []
    for step in reading.steps:
        for run in _ARITHMETIC.findall(step):
            equation = _squeeze(run).strip(".")
            if "=" in equation and any(c.isdigit() for c in equation):
                found.append(equation)
    return tuple(found)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def distinct(lists: list[tuple[str, ...]]) -> list[int]:
    """Indices of the first path of each equation list, in drawn order (paths with equal lists are one path)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for i, equation_list in enumerate(lists):
        if equation_list not in seen:
            seen.add(equation_list)
            out.append(i)
    return out


def control_paths(kept: list[int], wrong: list[list[int]]) -> tuple[list[tuple[int, int]], int]:
    """(question, path) pairs of wrong paths, as many as sum(kept): each question's first wrong paths up to its kept
    count; the shortfall from the other questions' unused wrong paths, one per question in turn (question order);
    what the model's distinct wrong paths cannot cover (a model that rarely errs) is written by the data set: pairs
    (question, -1), one for each question still short, in question order. Returns the pairs and how many of them the
    data set writes."""
    chosen, unused = [], []
    for q, need in enumerate(kept):
        chosen += [(q, i) for i in wrong[q][:need]]
        unused.append(deque(wrong[q][need:]))
    short = sum(kept) - len(chosen)
    while short and any(unused):
        for q, left in enumerate(unused):
            if short and left:
                chosen.append((q, left.popleft()))
                short -= 1
    deficits = [q for q, need in enumerate(kept) for _ in range(max(0, need - len(wrong[q])))]
    chosen += [(q, -1) for q in deficits[len(deficits) - short:]] if short else []
    return chosen, short


@dataclass
class Selection:
    """What RFT makes of one samples record: per question the kept correct paths and the distinct wrong paths
    (completion indices), and the control's (question, path) pairs."""
    kept: list[list[int]]
    wrong: list[list[int]]
    control: list[tuple[int, int]]  # (question, path); path -1: a wrong answer the data set writes
    from_data_set: int              # how many of the control's texts the data set writes (too few wrong paths)
    miscalculated: int = 0  # right answers rejected because a written step's arithmetic is wrong


def path_identity(reading) -> tuple[str, ...]:
    """What tells two paths apart: their equation list, or for a path with no equation (a bare answer under
    format=direct, a worked text that computes nothing) the answer it states."""
    return equations(reading) or (f"answer:{reading.answer}",)


def select(drawn: list[dict], readings, steps_ok=None) -> Selection:
    """Kept: the distinct (by equation list) completions with the right answer whose calculations are right, as
    RFT rejects paths whose calculations disagree with Python: `steps_ok(q, reading)` is the data set's exact step
    check (False rejects; None, or no checker: the data set cannot check these steps, and the answer decides).
    Wrong: the distinct completions that state a wrong answer (the same form as a kept path; a completion with no
    answer, cut off or a failed program, is in neither, nor is a right answer reached by a wrong calculation).
    `readings[q][i]` is completion i of question q read by the answer format."""
    kept, wrong, miscalculated = [], [], 0
    for q, row in enumerate(drawn):
        lists = [path_identity(r) for r in readings[q]]
        right = [i for i, c in enumerate(row["completions"]) if c["correct"] == 1]
        sound = [i for i in right if steps_ok is None or steps_ok(q, readings[q][i]) is not False]
        miscalculated += len(right) - len(sound)
        stated_wrong = [i for i, c in enumerate(row["completions"]) if c["correct"] == 0 and c.get("answer") is not None]
        for ids, into in ((sound, kept), (stated_wrong, wrong)):
            into.append([ids[j] for j in distinct([lists[i] for i in ids])])
    control, from_data_set = control_paths([len(ids) for ids in kept], wrong)
    return Selection(kept, wrong, control, from_data_set, miscalculated)


@dataclass
class RejectionSampledLearner(LoraLearner):
    name: str = "tune-rft"
    control_name: str = "tune-rft-wrong"
    paths: str = "correct"          # correct: tune-rft; incorrect: its control (the model's own wrong paths)
    k: int = 8                      # completions sampled per training question (RFT samples up to 100)
    temperature: float = 0.7        # RFT's sampling temperature: diverse paths that still read as solutions
    top_p: float = 1.0
    max_new_tokens: int = 128       # a path longer than this is cut off, states no answer, and is never kept
    demos: int = 0                  # worked solutions of other train questions before each question (0: none)
    include_reference: bool = True  # tune on the data set's worked solutions too (the paper's D ∪ D')

    def __post_init__(self):
        super().__post_init__()
        if self.paths not in PATHS:
            raise choices_error("learner.paths", self.paths, PATHS)
        if self.answers != "correct":
            raise choices_error("learner.answers", self.answers,
                                [("correct (tune-rft's references are the data set's own; its control differs in "
                                  "learner.paths)")], "invalid")
        checks = (("k", _integer(self.k, 2), "an integer >= 2 (paths sampled per question)"),
                  ("temperature", _number(self.temperature) and self.temperature > 0, "a number > 0"),
                  ("top_p", _number(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
                  ("max_new_tokens", _integer(self.max_new_tokens, 1), "an integer >= 1"),
                  ("demos", _integer(self.demos, 0), "an integer >= 0 (0: no demonstrations)"),
                  ("include_reference", isinstance(self.include_reference, bool), "true or false"))
        for what, ok, valid in checks:
            if not ok:
                raise UserError(f"learner.{what}={getattr(self, what)!r} is invalid; valid: {valid}")
        self.limits = ProgramLimits()  # the sandbox limits of program paths: the scorers' defaults

    def control(self) -> RejectionSampledLearner | None:
        """tune-rft is compared with tune-rft-wrong (the same tuning on the model's wrong paths); that control with
        the untouched model."""
        if self.paths == "incorrect":
            return None
        twin = copy.copy(self)
        twin.name, twin.paths = self.control_name, "incorrect"
        return twin

    def key(self, train_skill: str, seed: int) -> dict:
        # the stop strings are the answer format's, which the adapter's stage key holds (format_key)
        return {**super().key(train_skill, seed), "method": "rft", "paths": self.paths,
                "sampling": {"k": self.k, "temperature": self.temperature, "top_p": self.top_p,
                             "max_new_tokens": self.max_new_tokens, "stop": "the answer format's"},
                "demos": self.demos, "include_reference": self.include_reference,
                "programs": self.limits.identity(), "samples": SAMPLES_VERSION, "selection": SELECTION_VERSION}

    def validate(self, dataset, train_skill: str) -> None:
        """Fail before any model loads when the train skill has too few questions for the demonstrations."""
        super().validate(dataset, train_skill)
        n = len(dataset.train(train_skill))
        if self.demos >= n:
            raise UserError(f"learner.demos={self.demos} is invalid; valid: at most {n - 1} (the other train "
                            f"questions of {train_skill}; dataset.n_train sets how many there are)")

    def validate_format(self, answer_format, dataset, train_skill: str) -> None:
        """RFT keeps paths whose answers are checked: a format that reads an answer back out of a completion and a
        data set that checks it; a reasoning format also needs the data set's worked solutions (references,
        demonstrations). Under format=direct a path is the bare answer, its equation list empty: RFT keeps each
        question's right answer once and the control as many of the model's wrong answers (self-training, STaR-like)."""
        name = getattr(dataset, "name", type(dataset).__name__)
        if not callable(getattr(answer_format, "read", None)):
            raise UserError(f"learner={self.name} needs a format whose answers can be read back and checked: "
                            f"format={getattr(answer_format, 'name', answer_format)!r} has no read(); expected "
                            "direct, cot, pot, work or hybrid")
        needs = ("answer_kind", "is_correct")
        if getattr(answer_format, "reasoning", False):
            needs = ("solution", "format_problem", *needs)
        missing = [m for m in needs if not callable(getattr(dataset, m, None))]
        if missing:
            what = "writes and checks worked solutions" if "solution" in needs else "checks answers"
            raise UserError(f"learner={self.name} under format={answer_format.name} needs a data set that {what}, "
                            f"and data set {name!r} has no {', '.join(missing)} (ntkeval.data.base."
                            f"{'ReasoningDataSet' if 'solution' in needs else 'DataSet'}); expected e.g. dataset=arith")

    # ---- the shared samples stage --------------------------------------------------------------------------------
    def spec(self, context) -> SamplingSpec:
        return SamplingSpec(self.k, self.temperature, self.top_p, self.max_new_tokens, tuple(context.format.stop()))

    def samples_parts(self, context) -> dict:
        """What determines the sampled paths: learner and control share it (it holds no `paths`)."""
        spec = self.spec(context)
        return {"model": context.model_key, "dataset": context.dataset.identity(), "format": context.fmt.identity(),
                **context.format_key(), "train_skill": context.train_skill, "seed": context.seed,
                "sampling": spec.identity(), "demos": self.demos, "parser": PARSER_VERSION,
                "equivalence": EQUIVALENCE_VERSION, "version": SAMPLES_VERSION,
                **reading_parts(context.format, self.limits)}

    def demonstrations(self, context, example) -> str:
        """`demos` worked solutions of other train questions of the skill, chosen per question by the seed."""
        if not self.demos:
            return ""
        others = [e for e in context.dataset.train(context.train_skill) if e.id != example.id]
        chosen = random.Random(f"{context.seed}:rft-demos:{example.id}").sample(others, self.demos)
        written = [written_answer(context.format, context.dataset, e) for e in chosen]
        return context.fmt.demonstrations(chosen, written)

    def samples(self, context) -> list[dict]:
        """Per train question {"id", "completions": [{tokens, text, end, logp, answer, unparsable, correct}, ...]}:
        k paths from the untouched model, each question on its own seeded stream; computed once, then cached."""
        examples = context.dataset.train(context.train_skill)
        spec = self.spec(context)

        def compute() -> list[dict]:
            prompts = [context.fmt.prompt(e, self.demonstrations(context, e)) for e in examples]
            seeds = [path_seed(context.seed, e.id, spec) for e in examples]
            with context.session.language_model(None) as lm:
                drawn = lm.sample(prompts, spec, seeds, desc=f"sampling RFT paths of {context.train_skill}")
            read = verdicts(context.dataset, examples, drawn, context.format, self.limits)
            return [{"id": e.id, "completions": cs} for e, cs in zip(examples, read)]

        return context.cache.record(RFT_SAMPLES, self.samples_parts(context),
                                    Checked(compute, samples_problem(examples, spec.n)))

    # ---- what is tuned on --------------------------------------------------------------------------------------
    def selection(self, context, drawn: list[dict]) -> Selection:
        """The kept and control paths of `drawn`; a one-line UserError when a side would have nothing to add."""
        examples = context.dataset.train(context.train_skill)
        readings = [[context.format.read(c["text"], context.dataset.answer_kind(e)) for c in row["completions"]]
                    for e, row in zip(examples, drawn)]
        check = getattr(context.dataset, "check_steps", None)
        steps_ok = None if not callable(check) else \
            (lambda q, reading: check(examples[q], reading.steps) if reading.steps else None)
        chosen = select(drawn, readings, steps_ok)
        kept, sampled = sum(map(len, chosen.kept)), sum(len(row["completions"]) for row in drawn)
        where = (f"the {sampled} paths sampled on {context.train_skill} (learner.k={self.k}, temperature="
                 f"{self.temperature}, demos={self.demos})")
        if kept == 0 and not self.include_reference:
            raise UserError(f"learner={self.name} has nothing to tune on: none of {where} has the right answer, and "
                            "learner.include_reference=false adds no worked solutions; raise learner.k, learner.demos "
                            "or learner.temperature, use a stronger model, or set learner.include_reference=true")
        if chosen.from_data_set:
            log.warning("%s: %s hold %d distinct wrong paths for the %d kept right ones; the data set writes the "
                        "control's other %d wrong answers (same form)", self.name, where, sum(map(len, chosen.wrong)),
                        kept, chosen.from_data_set)
        if kept == 0:
            log.warning("%s kept no path: none of %s has the right answer; it tunes on the worked solutions "
                        "alone, as its control does", self.name, where)
        return chosen

    def training_texts(self, context) -> list[tuple[str, str]]:
        """The data set's worked solutions of the train questions (include_reference) then the chosen paths, each
        the completion as drawn (surrounding whitespace aside: the answer template adds its own) after the
        zero-shot prompt, as tune-skill places its texts."""
        examples = context.dataset.train(context.train_skill)
        fmt, data, form = context.fmt, context.dataset, context.format
        texts = [(fmt.prompt(e), fmt.target(written_answer(form, data, e))) for e in examples] \
            if self.include_reference else []
        drawn = self.samples(context)
        rng = random.Random(f"{context.seed}:{context.train_skill}:rft-wrong-answers")
        return texts + [(fmt.prompt(examples[q]), fmt.target(
            wrong_written_answer(form, data, examples[q], rng) if i < 0  # a path the data set wrote (see selection)
            else drawn[q]["completions"][i]["text"].strip())) for q, i in self.chosen(self.selection(context, drawn))]

    def chosen(self, selection: Selection) -> list[tuple[int, int]]:
        """(question, completion) of the paths this learner tunes on, in order."""
        if self.paths == "incorrect":
            return selection.control
        return [(q, i) for q, ids in enumerate(selection.kept) for i in ids]

    # ---- what it reports -----------------------------------------------------------------------------------------
    def adapt(self, context) -> Adaptation:
        adapted = super().adapt(context)
        adapted.record = self.recorded_record(context) or AdaptationRecord()  # the samples the tuning just used
        return adapted

    def recorded_record(self, context) -> AdaptationRecord | None:
        """The path counts and the table of every sampled path, from the cached samples (never sampling)."""
        examples = context.dataset.train(context.train_skill)
        drawn = context.cache.peek(RFT_SAMPLES, self.samples_parts(context),
                                   check=samples_problem(examples, self.k))
        if drawn is None:
            return None
        try:
            chosen = self.selection(context, drawn)
        except UserError:  # such samples never trained an adapter: nothing to report
            return None
        return path_record(drawn, chosen, len(examples) if self.include_reference else 0,
                           len(self.chosen(chosen)))


def path_record(drawn: list[dict], chosen: Selection, references: int, paths: int) -> AdaptationRecord:
    uses: dict[tuple[int, int], int] = {}
    for pair in chosen.control:
        uses[pair] = uses.get(pair, 0) + 1
    kept = {(q, i) for q, ids in enumerate(chosen.kept) for i in ids}
    rows = [[row["id"], c["text"], c.get("answer"), c["correct"], int((q, i) in kept), uses.get((q, i), 0)]
            for q, row in enumerate(drawn) for i, c in enumerate(row["completions"])]
    info = {"sampled_paths": len(rows), "correct_paths": sum(r[3] for r in rows),
            "distinct_correct_kept": len(kept), "miscalculated_rejected": chosen.miscalculated,
            "questions_with_kept": sum(1 for ids in chosen.kept if ids),
            "incorrect_pool": sum(map(len, chosen.wrong)), "control_paths": len(chosen.control),
            "control_from_data_set": chosen.from_data_set,
            "reference_texts": references, "training_texts": references + paths}
    return AdaptationRecord(info=info, tables={"paths": {"columns": PATH_COLUMNS, "rows": rows}})


def path_seed(seed: int, example_id: str, spec: SamplingSpec) -> int:
    """The random stream of one training question's paths (as sample_stages.question_seed, for RFT's stage)."""
    return int(stable_hash({"seed": seed, "stage": RFT_SAMPLES, "id": example_id, "sampling": spec.identity()}),
               16) % (2 ** 63)


def _integer(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
