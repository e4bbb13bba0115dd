"""LoRA instruction tuning on the train skill's questions, with correct answers (tune-skill) or random answers of
the same form (tune-base: it learns the format, not the skill)."""

from __future__ import annotations

import copy
import json
import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ntkeval.backends.base import TrainingSettings
from ntkeval.cache import stable_hash
from ntkeval.errors import choices_error
from ntkeval.formats.writing import written_answer, wrong_written_answer
from ntkeval.learners.base import Adaptation, checked_curve

log = logging.getLogger(__name__)
ANSWERS = ("correct", "random")
ADAPTERS = "adapters"  # the stage-cache kind of trained LoRA adapters
LOSSES = "adapter-losses"  # the stage-cache kind of their training loss curves (same key as the adapter)


@dataclass
class LoraLearner:
    name: str = "tune-skill"
    answers: str = "correct"      # correct: learn the skill; random: same questions, random answers of the same form
    lora: Any = None              # a peft.LoraConfig (conf: _target_: peft.LoraConfig); target_modules from the model
    steps: int = 40               # optimizer steps
    batch_size: int = 8           # sequences per step
    lr: float = 1e-3              # AdamW learning rate (LoRA typically 1e-4 .. 2e-3)
    weight_decay: float = 0.0
    checkpoint_every: int = 10    # steps between resumable checkpoints (a killed job continues from the last one)
    control_name: str = "tune-base"
    target_modules: list[str] | None = field(default=None, repr=False)  # filled from the model when lora has none
    curve: list[int] | None = None  # learning curve: optimizer steps (1..steps) whose adapters are scored too
    curve_unit: ClassVar[str] = "steps"

    def __post_init__(self):
        if self.answers not in ANSWERS:
            raise choices_error("tuning answers", self.answers, ANSWERS)
        for what, value in (("steps", self.steps), ("batch_size", self.batch_size)):
            if int(value) < 1:
                raise choices_error(f"tuning {what}", value, ["an integer >= 1"], "invalid")
        self.curve = checked_curve(self.curve, 1, int(self.steps), f"tuning.steps={self.steps}")
        if self.lora is None:
            from peft import LoraConfig

            self.lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM")

    def control(self) -> "LoraLearner | None":
        """tune-skill is compared with the same tuning on random answers; tune-base with the untouched model."""
        if self.answers == "random":
            return None
        twin = copy.copy(self)
        twin.name, twin.answers = self.control_name, "random"
        return twin

    def curve_sizes(self) -> list[int]:
        return list(self.curve or [])

    def at_size(self, size: int) -> LoraLearner:
        """The learner tuned for `size` steps: constant-rate AdamW and a data order that does not depend on the number
        of steps make it the adapter this learner has after `size` of its steps (saved then: see _keep_snapshot)."""
        sized = copy.copy(self)  # its control (copy.copy too) is the control at `size` steps
        sized.steps, sized.curve = size, [s for s in self.curve or [] if s <= size] or None
        return sized

    def bind_model(self, model) -> None:
        """Take the model's LoRA target modules when the LoRA config names none, so the key holds the real ones."""
        self.target_modules = list(model.lora_target_modules)

    def _lora_config(self):
        config = copy.deepcopy(self.lora)
        if not config.target_modules:
            if self.target_modules is None:
                raise RuntimeError("LoraLearner.bind_model(model) must be called before its key or adapter is used")
            config.target_modules = list(self.target_modules)
        return config

    def lora_config(self):
        """The adapter config it tunes with (target modules filled from the model): scorer=entk starts its gradient
        adapter from it."""
        return self._lora_config()

    def tunes_on_texts(self) -> bool:
        """Whether its adapter is train_adapter's answer-token loss on training_texts (the objective scorer=entk
        linearises); False for a subclass that trains otherwise (GRPO overrides _train)."""
        return type(self)._train is LoraLearner._train

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        # checkpoint_every is left out on purpose: it changes when work is saved, never the adapter
        lora = {k: (sorted(v) if isinstance(v, (set, frozenset)) else v)
                for k, v in self._lora_config().to_dict().items()}
        return {"kind": "lora", "answers": self.answers, "lora": lora, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "train_skill": train_skill, "seed": seed}

    def validate(self, dataset, train_skill: str) -> None:
        """Fail before any model loads if the train skill has no questions to tune on."""
        if not dataset.train(train_skill):
            raise choices_error("train set size", 0, [f"at least 1 train question of {train_skill} (dataset.n_train)"], "invalid")

    def stage(self, context) -> tuple[str, dict]:
        """The expensive stage behind this learner: (cache kind, what determines the adapter)."""
        return ADAPTERS, {"model": context.model_key, "dataset": context.dataset.identity(),
                          "format": context.fmt.identity(), **context.format_key(),
                          "learner": self.key(context.train_skill, context.seed)}

    def adapt(self, context) -> Adaptation:
        kind, parts = self.stage(context)
        adapter_dir = context.cache.directory(kind, parts, lambda tmp: self._train(context, tmp, parts),
                                              check=self._adapter_problem)
        loss = read_loss(adapter_dir)  # sound: the cache checked it against the manifest and _adapter_problem
        # the loss curve is also a record of its own, so logging it later never needs the adapter (or retrains it)
        context.cache.record(LOSSES, parts, lambda: loss, check=self._loss_problem)
        return Adaptation(adapter_dir=adapter_dir, loss=loss)

    def recorded_loss(self, context) -> list[float]:
        """The training loss per step as the stage cache holds it, without training; [] when it holds none. A
        damaged loss record is restored from the adapter's own loss.json when that adapter is sound."""
        kind, parts = self.stage(context)
        loss = context.cache.peek(LOSSES, parts, check=self._loss_problem)
        if loss is None:
            adapter_dir = context.cache.peek_directory(kind, parts, check=self._adapter_problem)
            if adapter_dir is None:
                return []
            loss = context.cache.record(LOSSES, parts, lambda: read_loss(adapter_dir), check=self._loss_problem)
        return list(loss)

    def _loss_problem(self, loss) -> str | None:
        """What is wrong with a loss curve read back: it must hold one number per optimizer step."""
        if not isinstance(loss, list) or len(loss) != self.steps:
            return f"expected a list of {self.steps} losses, one per step"
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in loss):
            return "a loss that is not a number"
        return None

    def _adapter_problem(self, adapter_dir: Path) -> str | None:
        loss = read_loss(adapter_dir)
        return "loss.json cannot be parsed" if loss is None else self._loss_problem(loss)

    def training_texts(self, context) -> list[tuple[str, str]]:
        """(prompt, target) pairs: the train skill's questions with their answers written in the cell's answer
        format, correct (tune-skill) or wrong in content but not in form (tune-base: a random answer of the same
        form; for reasoning formats a solution of the same shape with random numbers in every step)."""
        examples = context.dataset.train(context.train_skill)
        rng = random.Random(f"{context.seed}:{context.train_skill}:random-answers")
        fmt, data, form = context.fmt, context.dataset, context.format
        if self.answers == "correct":
            return [(fmt.prompt(e), fmt.target(written_answer(form, data, e))) for e in examples]
        return [(fmt.prompt(e), fmt.target(wrong_written_answer(form, data, e, rng))) for e in examples]

    def solution_skills(self, dataset, train_skill: str) -> list[str]:
        """The skills whose worked solutions it tunes on: the train skill's."""
        return [train_skill]

    def settings(self, seed: int) -> TrainingSettings:
        """The training settings; the session seeds the adapter initialisation with `seed`, so tune-base and
        tune-skill start from the same adapter and walk their data in the same order."""
        snapshots = tuple(s for s in self.curve or [] if s < self.steps)  # the curve's adapters, saved on the way
        return TrainingSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                weight_decay=self.weight_decay, seed=seed, checkpoint_every=self.checkpoint_every,
                                snapshots=snapshots)

    def _train(self, context, out_dir: Path, parts: dict) -> None:
        texts = self.training_texts(context)
        checkpoint = context.cache.root / "checkpoints" / stable_hash(parts)
        settings = self.settings(context.seed)
        keep = (lambda step, adapter_dir, loss: self._keep_snapshot(context, step, adapter_dir, loss)) \
            if settings.snapshots else None
        loss = context.session.train_adapter(self.name, self._lora_config(), texts, settings,
                                             desc=f"tuning {self.name} on {context.train_skill}",
                                             checkpoint=checkpoint, out_dir=out_dir, on_snapshot=keep)
        (out_dir / "loss.json").write_text(json.dumps(loss))

    def _keep_snapshot(self, context, step: int, adapter_dir: Path, loss: list[float]) -> None:
        """File the adapter as it is after `step` steps in the stage cache as at_size(step)'s adapter (with the first
        `step` losses), so scoring the learning curve trains nothing more."""
        sized = self.at_size(step)
        kind, parts = sized.stage(context)

        def build(tmp: Path) -> None:
            shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True)
            (tmp / "loss.json").write_text(json.dumps(loss[:step]))

        context.cache.directory(kind, parts, build, check=sized._adapter_problem)
        context.cache.record(LOSSES, parts, lambda: list(loss[:step]), check=sized._loss_problem)


def read_loss(adapter_dir: Path):
    """The parsed loss.json of an adapter directory, or None when it is missing or not JSON."""
    try:
        return json.loads((adapter_dir / "loss.json").read_bytes().decode())
    except (OSError, ValueError):
        return None
