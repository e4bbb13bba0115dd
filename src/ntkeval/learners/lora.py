"""LoRA instruction tuning on the train skill's questions, with correct answers (tune-skill) or random answers of
the same form (tune-base: it learns the format, not the skill)."""

from __future__ import annotations

import copy
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ntkeval.errors import choices_error
from ntkeval.progress import progress
from ntkeval.scoring import encode_pair

log = logging.getLogger(__name__)
ANSWERS = ("correct", "random")


@dataclass
class LoraLearner:
    name: str = "tune-skill"
    answers: str = "correct"      # correct: learn the skill; random: same questions, random answers of the same form
    lora: Any = None              # a peft.LoraConfig (conf: _target_: peft.LoraConfig); target_modules from the model
    steps: int = 40               # optimizer steps
    batch_size: int = 8           # sequences per step
    lr: float = 1e-3              # AdamW learning rate (LoRA typically 1e-4 .. 2e-3)
    weight_decay: float = 0.0
    control_name: str = "tune-base"
    target_modules: list[str] | None = field(default=None, repr=False)  # filled from the model when lora has none

    def __post_init__(self):
        if self.answers not in ANSWERS:
            raise choices_error("tuning answers", self.answers, ANSWERS)
        for what, value in (("steps", self.steps), ("batch_size", self.batch_size)):
            if int(value) < 1:
                raise choices_error(f"tuning {what}", value, ["an integer >= 1"], "invalid")
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

    def _lora_config(self, model_targets: list[str]):
        config = copy.deepcopy(self.lora)
        if not config.target_modules:
            config.target_modules = list(model_targets)
        return config

    def key(self, train_skill: str, seed: int) -> dict[str, Any]:
        lora = {k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in self.lora.to_dict().items()}
        return {"kind": "lora", "answers": self.answers, "lora": lora, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "train_skill": train_skill, "seed": seed}

    def validate(self, dataset, train_skill: str) -> None:
        """Fail before any model loads if the train skill has no questions to tune on."""
        if not dataset.train(train_skill):
            raise choices_error("train set size", 0, [f"at least 1 train question of {train_skill} (dataset.n_train)"], "invalid")

    def adapt(self, context) -> "Adaptation":
        from ntkeval.learners import Adaptation

        parts = {"model": context.model_key, "dataset": context.dataset.identity(), "format": context.fmt.identity(),
                 "learner": self.key(context.train_skill, context.seed)}
        adapter_dir = context.cache.directory("adapters", parts, lambda tmp: self._train(context, tmp))
        loss = json.loads((adapter_dir / "loss.json").read_text())
        return Adaptation(adapter_dir=adapter_dir, loss=loss)

    def training_texts(self, context) -> list[tuple[str, str]]:
        """(prompt, target) pairs: the train skill's questions with correct or random answers."""
        examples = context.dataset.train(context.train_skill)
        rng = random.Random(f"{context.seed}:{context.train_skill}:random-answers")
        fmt = context.fmt
        if self.answers == "correct":
            return [(fmt.prompt(e), fmt.target(e.answer)) for e in examples]
        return [(fmt.prompt(e), fmt.target(context.dataset.random_answer(e, rng))) for e in examples]

    def _train(self, context, out_dir: Path) -> None:
        session = context.session
        texts = self.training_texts(context)
        torch.manual_seed(context.seed)  # the same adapter initialisation for tune-base and tune-skill
        model = session.new_adapter(self.name, self._lora_config(session.loader.lora_target_modules))
        loss = train_lora(model, session.tokenizer, texts, self.steps, self.batch_size, self.lr, self.weight_decay,
                          context.seed, desc=f"tuning {self.name} on {context.train_skill}")
        session.save_adapter(self.name, out_dir)
        (out_dir / "loss.json").write_text(json.dumps(loss))


def _collate(pairs, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels that are -100 everywhere but on answer tokens."""
    seqs = [p.context + p.answer for p in pairs]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (p, seq) in enumerate(zip(pairs, seqs)):
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :len(seq)] = 1
        labels[row, len(p.context):len(seq)] = torch.tensor(p.answer)
    return ids.to(device), mask.to(device), labels.to(device)


def train_lora(model, tokenizer, texts: list[tuple[str, str]], steps: int, batch_size: int, lr: float,
               weight_decay: float, seed: int, desc: str = "tuning") -> list[float]:
    """Train the trainable (adapter) parameters with the loss on answer tokens only; return the loss per step."""
    pairs = [encode_pair(tokenizer, prompt, target) for prompt, target in texts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(seed)
    queue: list[int] = []
    losses = []
    model.train()
    for _ in progress(range(steps), desc=desc):
        if len(queue) < batch_size:  # walk through the data in seeded epochs so every question is seen evenly
            queue += torch.randperm(len(pairs), generator=order).tolist()
        batch, queue = queue[:batch_size], queue[batch_size:]
        ids, mask, labels = _collate([pairs[i] for i in batch], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    log.info("%s: loss %.4f -> %.4f", desc, losses[0], losses[-1])
    return losses
