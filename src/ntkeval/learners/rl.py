"""tune-rl: reinforcement learning with verifiable rewards on the train skill's questions (WizardMath's RLEIF with
exact rewards in place of its reward models), by TRL's GRPO on a LoRA adapter; its control tune-rl-format is the same
training rewarded for writing a readable answer, right or wrong.

Rewards (learner.reward), each 0 or 1 per completion, read exactly as the scorers read samples:
  correct  the answer read in the cell's answer format is right (a program's answer is its output in the sandbox):
           the outcome reward, here exact
  process  the data set's exact step checker accepts every step written (a question it cannot check gives 0):
           WizardMath's process reward, here exact
  format   an answer can be read at all: the control's reward, blind to correctness
Several rewards combine as their PRODUCT, as RLEIF multiplies its two rewards: with 0/1 rewards [correct, process]
rewards a completion only when it is right for the right reasons (the process scorer's verdict), so a lucky answer
after wrong steps earns what a wrong answer earns. A sum would pay half for either alone and so also teach writing
right-looking steps without reaching the answer. GRPO turns each group's rewards into advantages itself.

The control pairing: tune-rl-format has the same prompts (evolved the same way), steps, group size, sampling, KL,
seed, adapter initialisation and prompt order; only the reward differs, and it ignores correctness. What the kernel
then shows is what rewarding correctness adds over rewarding the form of an answer.

tuning.batch_size is GRPO's per-step batch in COMPLETIONS (sequences per step, as for tune-skill): each step draws
batch_size / num_generations prompts and num_generations completions of each, so it must be a multiple of
num_generations (4 prompts x 4 completions: tuning.batch_size=16 learner.num_generations=4).
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntkeval.backends.huggingface.policy_training import FIXED, VERSION, PolicySettings
from ntkeval.cache import stable_hash
from ntkeval.data.base import EVOLUTIONS
from ntkeval.errors import UserError
from ntkeval.learners.base import Adaptation, AdaptationRecord
from ntkeval.learners.lora import LoraLearner, read_loss
from ntkeval.scorers.reading import ProgramLimits, answers, is_direct, reading_parts

REWARDS = ("correct", "process", "format")
DEPTHS = (1, 2)              # evolve_depth: 1 larger numbers, 2 also one more operation (AugmentingDataSet.evolved)
STEPLESS_FORMATS = ("pot",)  # reasoning formats whose completions are programs: no written steps to check
LIMITS = ProgramLimits()     # the sandbox limits a program answer runs under (the scorers' defaults)


@dataclass
class RlLearner(LoraLearner):
    name: str = "tune-rl"
    control_name: str = "tune-rl-format"
    reward: list[str] = field(default_factory=lambda: ["correct"])  # product of: correct, process; or [format]
    num_generations: int = 4         # completions per prompt: the group GRPO compares (>= 2)
    max_completion_length: int = 64  # tokens per completion at most
    temperature: float = 1.0         # sampling temperature of the completions (> 0)
    beta: float = 0.0                # KL penalty to the untouched model (0: none, as DAPO and Dr. GRPO)
    evolve: str | None = None        # null: the train questions as they are; depth: made harder (Evol-Instruct)
    evolve_depth: int = 1            # 1: larger numbers; 2: also one more operation

    def __post_init__(self):
        super().__post_init__()
        if self.curve:  # GRPO's loop saves no snapshots: every size would be a GRPO run of its own
            raise UserError(f"learner.curve={self.curve} is not available for {self.name} (its GRPO run saves no "
                            "adapters on the way, so each size would be a run of its own); valid: [] (a learning "
                            "curve: learner=tune-skill, tune-rft or tune-augment)")
        if self.answers != "correct":
            raise UserError(f"learner.answers={self.answers!r} is invalid for {self.name}; valid: correct (RL writes "
                            "no answers: its control is learner.reward=[format], i.e. learner=tune-rl-format)")
        self.reward = list(self.reward) if isinstance(self.reward, (list, tuple)) else [self.reward]
        unknown = [r for r in self.reward if r not in REWARDS]
        if unknown or not self.reward or len(set(self.reward)) != len(self.reward) or \
                ("format" in self.reward and len(self.reward) > 1):
            raise UserError(f"learner.reward={self.reward!r} is invalid; valid: a list of distinct rewards among "
                            "correct, process (multiplied), or [format] alone (the control), e.g. [correct]")
        _integer("num_generations", self.num_generations, 2)
        _integer("max_completion_length", self.max_completion_length, 1)
        if self.batch_size % self.num_generations:
            raise UserError(f"tuning.batch_size={self.batch_size} is invalid with learner.num_generations="
                            f"{self.num_generations}; valid: a multiple of {self.num_generations} (completions per "
                            "step = prompts per step x num_generations)")
        _number("temperature", self.temperature, "a number > 0", lambda v: v > 0)
        _number("beta", self.beta, "a number >= 0", lambda v: v >= 0)
        if self.evolve is not None and self.evolve not in EVOLUTIONS:
            raise UserError(f"learner.evolve={self.evolve!r} is invalid; valid: null, {', '.join(EVOLUTIONS)}")
        if self.evolve_depth not in DEPTHS or isinstance(self.evolve_depth, bool):
            raise UserError(f"learner.evolve_depth={self.evolve_depth!r} is invalid; valid: 1, 2")

    def control(self) -> "RlLearner | None":
        """tune-rl is compared with the same training rewarded for form alone; tune-rl-format with the untouched
        model."""
        if self.reward == ["format"]:
            return None
        twin = copy.copy(self)
        twin.name, twin.reward = self.control_name, ["format"]
        return twin

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        parts = super().key(train_skill, seed)
        del parts["answers"]  # always "correct": the reward says what is learned
        return {**parts, "kind": "grpo", "reward": list(self.reward), "num_generations": self.num_generations,
                "max_completion_length": self.max_completion_length, "temperature": self.temperature,
                "beta": self.beta, "evolve": self.evolve, "evolve_depth": self.evolve_depth,
                "trainer": {**FIXED, "version": VERSION}}

    def stage(self, context) -> tuple[str, dict]:
        kind, parts = super().stage(context)
        return kind, {**parts, **reading_parts(context.format, LIMITS)}  # how answers are read decides rewards

    def solution_skills(self, dataset, train_skill: str) -> list[str]:
        """None: RL writes no solutions, it reads the model's own."""
        return []

    def validate_format(self, answer_format, dataset, train_skill: str) -> None:
        """Before any model loads: the process reward needs written steps and a data set that checks them; evolve
        needs a data set that evolves the train skill's questions."""
        name = getattr(dataset, "name", type(dataset).__name__)
        if not callable(getattr(answer_format, "read", None)):
            raise UserError(f"format={getattr(answer_format, 'name', answer_format)!r} cannot read answers back; "
                            "valid: direct, cot, pot, work, hybrid")
        if "process" in self.reward:
            if is_direct(answer_format) or answer_format.name in STEPLESS_FORMATS:
                raise UserError(f"learner.reward={self.reward!r}: the process reward checks written steps, and "
                                f"format={answer_format.name} writes none; valid: format=cot, work or hybrid, "
                                "or learner.reward=[correct]")
            if not callable(getattr(dataset, "check_steps", None)):
                raise UserError(f"learner.reward={self.reward!r}: data set {name!r} checks no steps (check_steps); "
                                "valid: dataset=arith or khanskill, or learner.reward=[correct]")
        if self.evolve is not None:
            ask = getattr(dataset, "augmentation_problem", None)
            why = ask(self.evolve, [train_skill]) if callable(ask) else None
            if why is None and not (callable(ask) and callable(getattr(dataset, "evolved", None))):
                why = f"data set {name!r} cannot evolve questions (it has no evolved method)"
            if why:
                raise UserError(f"learner.evolve={self.evolve}: {why}; valid: learner.evolve=null, or a data set "
                                "that evolves its questions (arith)")

    # ---- what it trains on ---------------------------------------------------------------------------------------
    def training_examples(self, context) -> list:
        """The train skill's questions, or with evolve each made harder by the data set; learner and control get the
        same ones (drawn from the seed and the question alone)."""
        examples = context.dataset.train(context.train_skill)
        if self.evolve is None:
            return list(examples)
        return [context.dataset.evolved(e, self.evolve_depth,
                                        random.Random(f"{context.seed}:{e.id}:evolve:{self.evolve}:{self.evolve_depth}"))
                .example for e in examples]

    def reward_function(self, context, examples: list):
        """(question indices, completion texts) -> per completion {"reward": product of self.reward, "correct",
        "format"(, "process")}: correct and format are logged for every learner, so the control's table shows its
        accuracy too."""
        data, answer_format = context.dataset, context.format

        def score(indices, texts) -> list[dict[str, float]]:
            asked = [examples[i] for i in indices]
            kinds = [data.answer_kind(e) for e in asked]
            read = answers(list(texts), kinds, answer_format, LIMITS)
            out = []
            for example, kind, text, reading in zip(asked, kinds, texts, read, strict=True):
                given = reading["answer"]
                parts = {"correct": float(given is not None and bool(data.is_correct(example, given))),
                         "format": float(given is not None)}
                if "process" in self.reward:
                    verdict = data.check_steps(example, tuple(answer_format.read(text, kind).steps))
                    parts["process"] = float(bool(verdict))  # None (cannot check) counts as not checked right
                parts["reward"] = math.prod(parts[r] for r in self.reward)
                out.append(parts)
            return out

        return score

    def policy_settings(self, context) -> PolicySettings:
        return PolicySettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                              num_generations=self.num_generations, max_completion_length=self.max_completion_length,
                              temperature=self.temperature, beta=self.beta, seed=context.seed,
                              stop=tuple(context.format.stop()), checkpoint_every=self.checkpoint_every)

    # ---- the adapter, its loss and its rewards -------------------------------------------------------------------
    def adapt(self, context) -> Adaptation:
        adapted = super().adapt(context)
        return Adaptation(adapter_dir=adapted.adapter_dir, loss=adapted.loss,
                          record=self._record(read_rewards(adapted.adapter_dir)))

    def recorded_record(self, context) -> AdaptationRecord | None:
        """The reward table of the cached adapter, without training; None when the cache holds no sound adapter."""
        kind, parts = self.stage(context)
        adapter_dir = context.cache.peek_directory(kind, parts, check=self._adapter_problem)
        return None if adapter_dir is None else self._record(read_rewards(adapter_dir))

    def _record(self, rewards: list[dict]) -> AdaptationRecord:
        components = [c for c in ("correct", "process", "format") if c in rewards[0]]
        rows = [[step, row["reward"], *(row[c] for c in components)] for step, row in enumerate(rewards, start=1)]
        return AdaptationRecord(
            info={"reward": "*".join(self.reward), "final_reward": rewards[-1]["reward"],
                  "mean_reward": sum(r["reward"] for r in rewards) / len(rewards)},
            tables={"rewards": {"columns": ["step", "reward", *components], "rows": rows}})

    def _adapter_problem(self, adapter_dir: Path) -> str | None:
        problem = super()._adapter_problem(adapter_dir)
        if problem:
            return problem
        rewards = read_rewards(adapter_dir)
        if not isinstance(rewards, list) or len(rewards) != self.steps or not all(
                isinstance(r, dict) and isinstance(r.get("reward"), (int, float)) for r in rewards):
            return f"rewards.json must hold {self.steps} steps, each with a mean reward"
        return None

    def _train(self, context, out_dir: Path, parts: dict) -> None:
        examples = self.training_examples(context)
        prompts = [context.fmt.prompt(e) for e in examples]
        checkpoint = context.cache.root / "checkpoints" / stable_hash(parts)
        trained = context.session.train_policy(
            self.name, self._lora_config(), prompts, self.reward_function(context, examples),
            self.policy_settings(context), desc=f"GRPO {self.name} on {context.train_skill}", checkpoint=checkpoint,
            out_dir=out_dir)
        (out_dir / "loss.json").write_text(json.dumps(trained.loss))
        (out_dir / "rewards.json").write_text(json.dumps(trained.rewards))


def read_rewards(adapter_dir: Path):
    """The parsed rewards.json of an adapter directory (mean rewards per step), or None when missing or not JSON."""
    try:
        return json.loads((Path(adapter_dir) / "rewards.json").read_bytes().decode())
    except (OSError, ValueError):
        return None


def _integer(what: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"learner.{what}={value!r} is invalid; valid: an integer >= {least}")


def _number(what: str, value, valid: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok(value):
        raise UserError(f"learner.{what}={value!r} is invalid; valid: {valid}")
