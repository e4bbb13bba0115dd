"""The training texts of mathglm-tiny: arith's own train-split problems, written exactly as ntkeval's cells write them
(the default PromptFormat, bare answers or conf/format/cot.yaml's numbered steps), in a curriculum from short to long.

    texts = CurriculumData(seed=0, operations=("add", "ops"), formats=("question",))
    stage = texts.stages()[0]
    stage.sequence(random.Random(0), stage.writings[0])   # ("Q: What is 7+12?\\nA: 19\\n", [(21, 25)])

What the model is taught, by construction (MathGLM, Yang et al. 2023, writes multi-step arithmetic step by step):
- one-operation skills (add, sub, mul, div) with bare answers only (format=direct: no instruction line);
- multi-step skills (ops, cplex) with numbered steps only (format=cot: the cot instruction line leads the text, as in
  a cot cell's prompt), never as bare answers; one step per operation, so a long problem is a chain of short ones;
- only the configured operations and surface formats; every other arith skill is never seen.
Problems come from ArithDataset's train split (ntkeval.data.arith.split_of), so no arith test problem of any seed,
skill or format is ever a training text.

Throughput is what makes it learn in minutes on a CPU: a training sequence holds ONE problem (a bare-answer text is
~16-25 characters, a steps text ~160 with its instruction line), so a step sees hundreds of problems instead of a few
dozen long packed sequences; the trainer batches each writing and surface format apart (similar lengths, little
padding, and a shared beginning: the instruction line and "Q: What is " are encoded once per batch). Every
PACK_EVERY-th step packs PACKED texts per sequence like in-context demonstrations (the separator between them, the
instruction line once at the start), so cells with demonstrations stay in distribution. The pools hold nearly every
distinct train problem arith has at max_operand 99 (add 3689, mul 567 there), since more distinct problems generalize
better than more repeats of fewer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ntkeval.data.arith import FORMATS, OPS, ArithDataset
from ntkeval.errors import UserError, choices_error
from ntkeval.formats.reasoning import CotFormat
from ntkeval.formats.writing import written_answer
from ntkeval.prompts import PromptFormat

DATA_VERSION = 2  # bump when the texts, pools or curriculum change: part of the model's identity
ONE_STEP = ("add", "sub", "mul", "div")  # one operation: taught with bare answers (the rest with steps)
SMALL_OPERAND = 20   # operands of a skill's first curriculum stage ("small numbers first")
FULL_OPERAND = 99    # arith's default max_operand: the test problems' range
PACK_EVERY = 8       # every 8th step packs its sequences like in-context demonstrations (cells with demos)...
PACKED = 2           # ... with this many texts each; the other steps hold one text per sequence
# Distinct train problems drawn per skill and operand range: just below what arith's train split holds (add: 151 at 20
# and 3689 at 99; mul: 93 and 567; div: 105 and 585; ops: 4815 and 30600; measured), so the draw always succeeds.
POOL = {("add", 20): 140, ("sub", 20): 140, ("mul", 20): 85, ("div", 20): 95, ("ops", 20): 4000, ("cplex", 20): 4000,
        ("add", 99): 3680, ("sub", 99): 3600, ("mul", 99): 560, ("div", 99): 580, ("ops", 99): 20000,
        ("cplex", 99): 20000}
# (name, share of the steps, operand range of one-step skills, of multi-step skills; None: not drawn yet)
CURRICULUM = (("one operation, operands <= 20", 0.1, SMALL_OPERAND, None),
              ("one operation to 99, two or more operations <= 20", 0.2, FULL_OPERAND, SMALL_OPERAND),
              ("everything, operands to 99", 0.7, FULL_OPERAND, FULL_OPERAND))
PROMPT = PromptFormat()   # conf/config.yaml's prompt (tests/test_mathglm.py checks that they agree)
COT = CotFormat()         # conf/format/cot.yaml (checked likewise)
DIRECT_LEAD = ""          # format=direct puts no instruction line before a prompt


@dataclass(frozen=True)
class Writing:
    """How a sequence is written: its lead (the format's instruction line) and the skills written this way, all of one
    surface format (so a batch of them shares its first characters, which the trainer encodes once)."""
    name: str              # "direct" or "cot"
    lead: str
    skills: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """One curriculum stage: per skill the pool of train problems (question text, written answer) it draws from."""
    name: str
    share: float
    writings: tuple[Writing, ...]
    pools: dict  # (writing name, skill) -> list of (question, written answer)

    def sequence(self, rng: random.Random, writing: Writing, texts: int = 1) -> tuple[str, list[tuple[int, int]]]:
        """One training sequence of `texts` problems written one way, and the character spans the loss is taken on
        (each written answer with its delimiter and the character after it: the separator, or the end of the text,
        where EOS follows)."""
        text, spans = writing.lead + "\n" if writing.lead else "", []
        for i in range(texts):
            skill = rng.choice(writing.skills)
            question, answer = rng.choice(self.pools[writing.name, skill])
            if i:
                text += PROMPT.separator
            text += PROMPT.question.format(question=question)
            start = len(text)
            text += PROMPT.target(answer)
            spans.append((start, len(text) + 1))  # +1: the separator or EOS that follows is learned too
        return text, spans


def skill_length(operation: str) -> int:
    """1 for a one-operation skill, 2 for a multi-step one: what the curriculum orders by."""
    return 1 if operation in ONE_STEP else 2


class CurriculumData:
    """The training texts of one mathglm-tiny configuration: which operations and surface formats it is taught."""

    def __init__(self, seed: int, operations: Sequence[str], formats: Sequence[str]):
        for op in operations:
            if op not in OPS:
                raise choices_error("mathglm operation (model.operations)", op, OPS)
        for fmt in formats:
            if fmt not in FORMATS:
                raise choices_error("mathglm surface format (model.formats)", fmt, FORMATS)
        if not operations or not formats:
            raise UserError(f"mathglm: operations={list(operations)} and formats={list(formats)} must be non-empty; "
                            f"e.g. operations=[{', '.join(OPS[:3])}] formats=[{FORMATS[0]}]")
        self.seed, self.operations, self.formats = seed, tuple(operations), tuple(formats)
        self._stages: list[Stage] | None = None  # drawn on first use: building a cell must not wait for them

    def identity(self) -> dict:
        return {"data_version": DATA_VERSION, "seed": self.seed, "operations": list(self.operations),
                "formats": list(self.formats), "prompt": PROMPT.identity(), "cot": COT.identity()}

    def stages(self) -> list[Stage]:
        """The curriculum's stages that have something to draw (a model of multi-step skills only starts later)."""
        if self._stages is None:
            self._stages = [self._stage(name, share, ranges) for name, share, ranges in self._plan()]
        return list(self._stages)

    def schedule(self, steps: int) -> list[int]:
        """The stage index of every optimizer step, in order: each stage takes its share of the steps (the shares of
        stages with nothing to draw go to the others)."""
        plan = self._plan()
        total = sum(share for _, share, _ in plan)
        bounds, acc = [], 0.0
        for _, share, _ in plan:
            acc += share / total
            bounds.append(round(acc * steps))
        return [next(i for i, bound in enumerate(bounds) if step < bound) for step in range(steps)]

    def _plan(self) -> list[tuple[str, float, dict[str, int]]]:
        """(name, share, operand range per drawn operation) of each stage with anything to draw."""
        plan = []
        for name, share, short_range, long_range in CURRICULUM:
            ranges = {op: short_range if skill_length(op) == 1 else long_range for op in self.operations}
            ranges = {op: limit for op, limit in ranges.items() if limit is not None}
            if ranges:
                plan.append((name, share, ranges))
        return plan

    def _stage(self, name: str, share: float, ranges: dict[str, int]) -> Stage:
        drawn = list(ranges)
        pools: dict = {}
        writings = []
        for writing, lead, ops in (("direct", DIRECT_LEAD, [op for op in drawn if skill_length(op) == 1]),
                                   ("cot", COT.instruction(), [op for op in drawn if skill_length(op) > 1])):
            for fmt in self.formats if ops else ():
                skills = tuple(f"{op}/{fmt}" for op in ops)
                for skill in skills:
                    pools[writing, skill] = self._pool(skill, ranges[skill.split("/")[0]], writing)
                writings.append(Writing(writing, lead, skills))
        return Stage(name, share, tuple(writings), pools)

    def _pool(self, skill: str, max_operand: int, writing: str) -> list[tuple[str, str]]:
        """Distinct train problems of one skill (arith's own generator and split), as (question, written answer)."""
        op = skill.split("/")[0]
        dataset = ArithDataset(seed=self.seed, n_train=POOL[op, max_operand], n_test=0, max_operand=max_operand)
        examples = dataset.train(skill)
        if writing == "direct":
            return [(e.question, e.answer) for e in examples]
        return [(e.question, written_answer(COT, dataset, e)) for e in examples]
