"""LoRA tuning on augmented data at the budget of plain tuning (tune-augment): MetaMath's rephrasings, FOBAR
backward questions and AugGSM8K's several worked solutions, mixed with the train skill's own questions. Its control,
tune-augment-base, tunes on the same mix with wrong answers of the same form (tune-base with the same mix).

The mix, deterministic given the seed: n_texts texts in all (null: as many as the train skill has questions, the
number plain tune-skill tunes on, so augmentation competes at equal budget), split in equal shares between the
original questions and each augmentation kind (in the order original, then the kinds sorted; the remainder of the
division goes one each to the first of them). The originals are the train questions in a seeded order. A kind's
pool is round-robin over the train questions in a seeded order of its own, each question's items in a seeded order:
its share takes one item from each of the first questions before a second from any. A pool smaller than its share (arith's
answers: a lone a-b has only one worked solution) leaves its shortfall to the others, originals first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ntkeval.data.base import AUGMENTATIONS, Augmented
from ntkeval.errors import UserError, check_distinct_choices, choices_error
from ntkeval.formats.writing import written_answer, wrong_written_answer
from ntkeval.learners.base import AdaptationRecord
from ntkeval.learners.lora import LoraLearner

ORIGINAL = "original"   # the train skill's own questions, as plain tuning writes them
PER_QUESTION = 16       # at most this many items of one kind are made from one train question
SHOWN_PER_KIND = 2      # example texts per kind in the adaptation record's table
MIX_VERSION = 1         # bump when the mix rule (shares, orders, shortfalls) changes: it decides what is tuned on


@dataclass
class AugmentedLearner(LoraLearner):
    name: str = "tune-augment"
    augment: list[str] = field(default_factory=lambda: list(AUGMENTATIONS))  # any non-empty subset; order is moot
    n_texts: int | None = None    # training texts in all; null: the train skill's number of questions
    control_name: str = "tune-augment-base"

    def __post_init__(self):
        super().__post_init__()
        kinds = list(self.augment) if isinstance(self.augment, (list, tuple)) else [self.augment]
        check_distinct_choices("learner.augment", "augmentation", kinds, AUGMENTATIONS)
        self.augment = sorted(kinds)
        if self.n_texts is not None and (isinstance(self.n_texts, bool) or not isinstance(self.n_texts, int)
                                         or self.n_texts < 1):
            raise choices_error("learner.n_texts", self.n_texts, ["null", "an integer >= 1"], "invalid")

    def key(self, train_skill: str, seed: int) -> dict:
        return {**super().key(train_skill, seed), "augment": sorted(self.augment), "n_texts": self.n_texts,
                "mix": MIX_VERSION}

    def validate_format(self, answer_format, dataset, train_skill: str) -> None:
        """Before any model loads: the data set makes every asked augmentation for the train skill, and the pools
        hold n_texts texts."""
        name = getattr(dataset, "name", type(dataset).__name__)
        ask = getattr(dataset, "augmentation_problem", None)
        listed = f"[{', '.join(self.augment)}]"
        for kind in self.augment:
            why = ask(kind, [train_skill]) if callable(ask) else None
            if why is None and not (callable(ask) and callable(getattr(dataset, "augment", None))):
                why = f"data set {name!r} cannot make {kind} (it has no augment method)"
            if why:
                expected = "" if "expected" in why else ("; expected augmentations it can make, or a data set that "
                                                         "makes them (arith)")
                raise UserError(f"learner.augment={listed}: {why}{expected}")
        pools = self.pools(dataset, train_skill, 0)
        available = sum(len(pool) for pool in pools.values())
        if self.total(dataset, train_skill) > available:
            raise UserError(f"learner.n_texts={self.n_texts} is invalid; {train_skill} gives at most {available} "
                            f"texts with augment={listed}; expected at most {available}, or null")

    def total(self, dataset, train_skill: str) -> int:
        return self.n_texts if self.n_texts is not None else len(dataset.train(train_skill))

    def pools(self, dataset, train_skill: str, seed: int) -> dict[str, list[Augmented]]:
        """Every item each kind could give, in the order the mix takes them (the module docstring's rule)."""
        def order(kind: str) -> list:  # each kind its own order, so small shares spread over more questions
            examples = list(dataset.train(train_skill))
            random.Random(f"{seed}:{train_skill}:{kind}:order").shuffle(examples)
            return examples

        pools = {ORIGINAL: [Augmented(e, None, None, ORIGINAL, e.id) for e in order(ORIGINAL)]}
        for kind in self.augment:
            per_question = []
            for example in order(kind):
                rng = random.Random(f"{seed}:{example.id}:{kind}")
                items = dataset.augment(example, kind, PER_QUESTION, rng)
                rng.shuffle(items)
                per_question.append(items)
            longest = max((len(items) for items in per_question), default=0)
            pools[kind] = [items[i] for i in range(longest) for items in per_question if i < len(items)]
        return pools

    def mix(self, dataset, train_skill: str, seed: int) -> list[Augmented]:
        """The items tuned on, kind by kind (original first); originals carry no solution (they are written as
        plain tuning writes them)."""
        pools = self.pools(dataset, train_skill, seed)
        kinds, total = list(pools), self.total(dataset, train_skill)
        shares = {kind: total // len(kinds) + (i < total % len(kinds)) for i, kind in enumerate(kinds)}
        taken = {kind: min(shares[kind], len(pools[kind])) for kind in kinds}
        for kind in kinds:  # a short pool's shortfall goes to the others, originals first
            taken[kind] += min(total - sum(taken.values()), len(pools[kind]) - taken[kind])
        if sum(taken.values()) < total:
            raise UserError(f"learner.n_texts={total}: {train_skill} gives only {sum(taken.values())} texts")
        return [item for kind in kinds for item in pools[kind][:taken[kind]]]

    def training_texts(self, context) -> list[tuple[str, str]]:
        """(prompt, target) pairs of the mix in the cell's answer format: correct (the augmented item's solution;
        direct: its answer) or, for the control, the same items with wrong content of the same form (the item's
        wrong solution; direct: a random answer of the augmented example's form)."""
        data, form, fmt = context.dataset, context.format, context.fmt
        rng = random.Random(f"{context.seed}:{context.train_skill}:random-answers")
        texts = []
        for item in self.mix(data, context.train_skill, context.seed):
            example = item.example
            if self.answers == "correct":
                answer = (written_answer(form, data, example) if item.kind == ORIGINAL else
                          form.target(example, item.solution) if form.reasoning else example.answer)
            else:
                answer = (wrong_written_answer(form, data, example, rng) if item.kind == ORIGINAL else
                          form.target(example, item.wrong) if form.reasoning else data.random_answer(example, rng))
            texts.append((fmt.prompt(example), fmt.target(answer)))
        return texts

    def record(self, context) -> AdaptationRecord:
        """How many texts of each kind it tuned on, and the first few texts of each kind."""
        items = self.mix(context.dataset, context.train_skill, context.seed)
        texts = self.training_texts(context)
        counts = {kind: sum(item.kind == kind for item in items) for kind in (ORIGINAL, *self.augment)}
        rows, shown = [], dict.fromkeys(counts, 0)
        for item, (prompt, target) in zip(items, texts):
            if shown[item.kind] < SHOWN_PER_KIND:
                shown[item.kind] += 1
                rows.append([item.kind, item.source, prompt, target])
        return AdaptationRecord(info={"texts": len(items), **{f"texts_{k}": n for k, n in counts.items()}},
                                tables={"augmented_texts": {"columns": ["kind", "source", "prompt", "target"],
                                                            "rows": rows}})

    def adapt(self, context):
        adaptation = super().adapt(context)
        adaptation.record = self.record(context)
        return adaptation

    def recorded_record(self, context) -> AdaptationRecord | None:
        """The record of a cached adapter (the mix is data, rebuilt exactly from the key); None while none is cached."""
        kind, parts = self.stage(context)
        if context.cache.peek_directory(kind, parts, check=self._adapter_problem) is None:
            return None
        return self.record(context)
