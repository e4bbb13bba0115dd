"""Reinforcement learning of a LoRA adapter with verifiable rewards: TRL's GRPOTrainer (group-relative policy
optimisation) on prompts whose completions an exact reward function scores, resumable from Trainer checkpoints.

    log = train_policy(model, tokenizer, prompts, reward, PolicySettings(...), adapter="tune-rl", checkpoint=dir)
    log.loss      # the GRPO loss per optimizer step
    log.rewards   # per step: {"reward": mean combined reward, "<component>": its mean, ...}

Three things are adapted to the session, each where TRL leaves it open:
  * completions end where the scorers' samples end (ntkeval.backends.huggingface.sampling): at the first stop string
    of the answer format, at EOS, or at max_completion_length. TRL's generate stops only at EOS (transformers needs
    the tokenizer passed to generate for stop strings, which TRL does not pass), so the tokenizer is handed to it
    and the completion tokens are cut after the token that completes a stop string: the policy is trained on
    exactly the text the scorers will sample and read (the reward sees it without the stop string, as a sample
    records it), and a direct answer costs a few tokens of generation instead of max_completion_length;
  * the reference policy of the KL term (beta > 0) is the untouched model, adapters disabled: the adapter starts at
    zero (LoRA's B = 0), so this is the starting policy. TRL would copy the adapter as "ref" into the session's
    PeftModel (and looks for an adapter named "default"); it is built with beta 0 and given beta afterwards, which
    takes TRL's own "new adapter: disable adapters" path;
  * each epoch's prompt order is drawn from the seed and the epoch alone (TRL's sampler keeps one generator for the
    whole process, so a run resumed after an epoch boundary would otherwise start its order over);
  * checkpoints hold the trained adapter only (the session's PeftModel may carry other learners' adapters), so
    Trainer's resume_from_checkpoint restores just it, with the optimizer, scheduler, RNG and step.
Importing this module imports neither torch nor TRL (a learner names PolicySettings; only training needs them).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# (question index, completion text) per completion -> per completion {"reward": combined, component: value, ...}
RewardFunction = Callable[[Sequence[int], Sequence[str]], list[dict[str, float]]]
VERSION = 1  # bump when training here changes its numbers (part of the learner's key, with FIXED)
# GRPO settings pinned here rather than left to TRL's defaults, so a TRL upgrade cannot change them silently; the
# learner keys them (FIXED is part of its key).
FIXED = {"loss_type": "dapo",       # token-level normalisation over the batch: no length bias (DAPO); TRL's default
         "scale_rewards": "group",  # advantages = (r - group mean) / group std, as GRPO defines them
         "num_iterations": 1,       # one policy update per generated batch: on-policy
         "epsilon": 0.2,            # PPO clip range of the probability ratio
         "top_p": 1.0, "top_k": 0,  # plain temperature sampling, as the scorers sample
         "max_grad_norm": 1.0,      # Trainer's clipping of the update
         "lr_scheduler_type": "constant"}  # a constant learning rate, as tune-skill's AdamW loop has


@dataclass(frozen=True)
class PolicySettings:
    """How a policy is trained with GRPO (the adapter's own shape is the LoRA config passed beside it)."""
    steps: int                   # optimizer steps; each generates a fresh batch (on-policy)
    batch_size: int              # completions per step: prompts per step * num_generations
    lr: float                    # AdamW learning rate
    weight_decay: float
    num_generations: int         # completions per prompt: the group whose mean and spread make the advantage
    max_completion_length: int   # tokens per completion at most
    temperature: float           # sampling temperature of the completions
    beta: float                  # weight of the KL penalty to the untouched model (0: none)
    seed: int                    # adapter initialisation (the caller's), prompt order and sampling
    stop: tuple[str, ...] = ()   # a completion ends at the first of these (the answer format's stop strings)
    checkpoint_every: int = 10   # steps between resumable checkpoints


@dataclass
class PolicyLog:
    loss: list[float] = field(default_factory=list)           # GRPO loss per step
    rewards: list[dict[str, float]] = field(default_factory=list)  # per step: "reward" and each component's mean


def cut_at_stop(tokenizer, ids: list[int], stop: Sequence[str]) -> list[int]:
    """The tokens up to and including the one whose decoded text first contains a stop string (all of them when no
    stop string occurs): where the scorers' sampler ends a completion."""
    if not stop or not any(s in tokenizer.decode(ids, skip_special_tokens=True) for s in stop):
        return list(ids)
    for end in range(1, len(ids) + 1):
        if any(s in tokenizer.decode(ids[:end], skip_special_tokens=True) for s in stop):
            return list(ids[:end])
    return list(ids)


def before_stop(text: str, stop: Sequence[str]) -> str:
    """The text a sample records: everything before the first stop string."""
    cuts = [text.index(s) for s in stop if s in text]
    return text[:min(cuts)] if cuts else text


def train_policy(model, tokenizer, prompts: list[str], reward: RewardFunction, settings: PolicySettings,
                 adapter: str, checkpoint: Path | None = None, desc: str = "GRPO") -> PolicyLog:
    """Train the trainable (adapter) parameters of `model` (a PeftModel whose active adapter `adapter` is the only
    trainable one) with GRPO on `prompts`; return the loss and the mean rewards per step. With `checkpoint`, the
    state is saved there every `checkpoint_every` steps and a later call resumes from the last save; the folder is
    removed once training ends (the finished adapter is what the stage cache keeps)."""
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint

    scratch = None if checkpoint is not None else Path(tempfile.mkdtemp(prefix="ntkeval-grpo-"))
    folder = Path(checkpoint) if checkpoint is not None else scratch
    folder.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(model, tokenizer, Dataset.from_dict({"prompt": list(prompts), "question": list(range(len(prompts)))}),
                       _reward_function(reward, settings.stop), settings, adapter, folder, checkpoint is not None)
    resume = get_last_checkpoint(str(folder)) if checkpoint is not None else None
    if resume:
        log.info("%s: resuming from %s", desc, resume)
    log.info("%s: %d steps of %d prompts x %d completions", desc, settings.steps,
             settings.batch_size // settings.num_generations, settings.num_generations)
    trainer.train(resume_from_checkpoint=resume)
    model.eval()
    history = [entry for entry in trainer.state.log_history if "loss" in entry and "step" in entry]
    shutil.rmtree(folder, ignore_errors=True)
    if len(history) != settings.steps:
        raise RuntimeError(f"{desc}: GRPO logged {len(history)} steps, expected {settings.steps}")
    components = sorted({k.removeprefix(COMPONENT) for e in history for k in e if k.startswith(COMPONENT)})
    return PolicyLog(loss=[float(e["loss"]) for e in history],
                     rewards=[{"reward": float(e["reward"]), **{c: float(e[COMPONENT + c]) for c in components}}
                              for e in history])


COMPONENT = "ntkeval_reward/"  # the metric prefix under which each reward component's mean is logged per step


def _reward_function(reward: RewardFunction, stop: Sequence[str]):
    """TRL's reward-function signature around ours: the question index column, completions read as a sample records
    them, and each component's mean logged per step beside TRL's own mean of the combined reward."""
    def verifiable(prompts, completions, question, log_metric=None, **_):
        scored = reward(list(question), [before_stop(text, stop) for text in completions])
        if log_metric is not None:
            for name in sorted({k for s in scored for k in s if k != "reward"}):
                log_metric(COMPONENT + name, sum(s[name] for s in scored) / len(scored))
        return [s["reward"] for s in scored]

    return verifiable


def _trainer(model, tokenizer, dataset, reward_function, settings: PolicySettings, adapter: str, folder: Path,
             saving: bool):
    from trl import GRPOConfig

    device = next(model.parameters()).device
    args = GRPOConfig(
        output_dir=str(folder), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1, num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length, temperature=settings.temperature,
        beta=0.0,  # set on the trainer below: see the module docstring
        learning_rate=settings.lr, weight_decay=settings.weight_decay, warmup_steps=0, optim="adamw_torch",
        seed=settings.seed, data_seed=settings.seed, shuffle_dataset=True, **FIXED,
        logging_steps=1, save_strategy="steps" if saving else "no", save_steps=settings.checkpoint_every,
        save_total_limit=1, report_to="none", disable_tqdm=True, log_completions=False,
        generation_kwargs={"stop_strings": list(settings.stop)} if settings.stop else None,
        bf16=False, fp16=False, gradient_checkpointing=False,  # train in the dtype the model was loaded in
        use_cpu=device.type == "cpu", dataloader_num_workers=0, remove_unused_columns=False)
    trainer = _grpo_trainer_class()(model=model, reward_funcs=[reward_function], args=args, train_dataset=dataset,
                                    processing_class=tokenizer)
    trainer.beta = settings.beta
    trainer.ntkeval_adapter, trainer.ntkeval_stop = adapter, tuple(settings.stop)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every step's 30 metrics to stdout; the log gets two
    trainer.add_callback(_step_logger(settings.steps))
    return trainer


def _step_logger(steps: int):
    """A Trainer callback that logs each step's loss and mean reward (instead of printing every metric)."""
    from transformers import TrainerCallback

    class StepLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and "reward" in logs:
                log.info("GRPO step %d/%d: loss %.4f, mean reward %.3f, %.1f s", state.global_step, steps,
                         logs["loss"], logs["reward"], logs.get("step_time", float("nan")))

    return StepLogger()


def _grpo_trainer_class():
    """GRPOTrainer with the session-specific behaviours of the module docstring (built on first use: TRL imports in
    seconds, and only training needs it)."""
    global _TRAINER
    if _TRAINER is None:
        from trl import GRPOTrainer
        from trl.trainer.utils import RepeatSampler

        class EpochSeededSampler(RepeatSampler):
            """TRL's RepeatSampler draws each epoch's order from one generator that lives as long as the process,
            so a run resumed after an epoch boundary would start the order over. Here epoch e's order is drawn
            from seed + e alone (epoch 0's is RepeatSampler's own); Trainer calls set_epoch before every epoch."""

            def set_epoch(self, epoch: int) -> None:
                self.generator.manual_seed(self.seed + epoch)

        class SessionGRPOTrainer(GRPOTrainer):
            ntkeval_adapter: str = "default"
            ntkeval_stop: tuple[str, ...] = ()

            def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                      has_tool_images=False):
                model = self.accelerator.unwrap_model(self.model_wrapped)
                # transformers stops at stop strings only with the tokenizer in hand; TRL calls generate without it
                model.generate = functools.partial(type(model).generate, model, tokenizer=self._tokenizer)
                try:
                    ids, logprobs = super()._generate_single_turn(prompt_ids, images, multimodal_fields,
                                                                  num_generations, has_tool_images)
                finally:
                    del model.generate  # the class's own again
                cut = [cut_at_stop(self._tokenizer, row, self.ntkeval_stop) for row in ids]
                if logprobs is not None:
                    logprobs = [lp[:len(row)] for lp, row in zip(logprobs, cut)]
                return cut, logprobs

            def _get_train_sampler(self, dataset=None):
                sampler = super()._get_train_sampler(dataset)
                return EpochSeededSampler(sampler.data_source, sampler.mini_repeat_count, sampler.batch_size,
                                          sampler.repeat_count, sampler.shuffle, sampler.seed)

            def _save(self, output_dir=None, state_dict=None):
                # only the adapter being trained: the session's other adapters are not this run's to restore
                out = output_dir or self.args.output_dir
                self.model.save_pretrained(out, selected_adapters=[self.ntkeval_adapter])

        _TRAINER = SessionGRPOTrainer
    return _TRAINER


_TRAINER = None
