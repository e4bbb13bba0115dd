"""The LoRA training loop: loss on answer tokens only, seeded data order, and resumable checkpoints so a job killed
mid-tuning continues where it stopped and ends with exactly the numbers of an uninterrupted run."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ntkeval.backends.huggingface.tokenization import encode_pair, pad_id
from ntkeval.progress import progress

log = logging.getLogger(__name__)


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


class _Checkpoint:
    """Trainable weights, optimizer, data order and losses after a step, written atomically to one file."""

    def __init__(self, folder: Path | None):
        self.path = folder / "state.pt" if folder else None

    def save(self, model, optimizer, order: torch.Generator, queue: list[int], losses: list[float]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the trainable weights in module order, not by name: their names hold the adapter's, and a run killed
        # under one adapter name (a curve size training beside its loaded full adapter) may resume under another
        state = {"params": [p.detach().cpu() for _, p in model.named_parameters() if p.requires_grad],
                 "optimizer": optimizer.state_dict(), "order": order.get_state(), "queue": queue, "losses": losses}
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def restore(self, model, optimizer, order: torch.Generator) -> tuple[list[int], list[float]] | None:
        """Load the last checkpoint into the objects; None when there is none (or it cannot be read)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, weights_only=True)
            params = [p for _, p in model.named_parameters() if p.requires_grad]
            saved = state["params"]
            if not isinstance(saved, list) or [tuple(v.shape) for v in saved] != [tuple(p.shape) for p in params]:
                raise ValueError("its trainable weights do not match this adapter's")
            with torch.no_grad():
                for param, value in zip(params, saved):
                    param.copy_(value)
            optimizer.load_state_dict(state["optimizer"])
            order.set_state(state["order"])
            return list(state["queue"]), list(state["losses"])
        except (OSError, RuntimeError, KeyError, ValueError) as error:
            log.warning("ignoring unreadable tuning checkpoint %s: %s", self.path, error)
            return None

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)


def train_lora(model, tokenizer, texts: list[tuple[str, str]], steps: int, batch_size: int, lr: float,
               weight_decay: float, seed: int, desc: str = "tuning", checkpoint: Path | None = None,
               checkpoint_every: int = 10, snapshots: tuple[int, ...] = (),
               on_snapshot: Callable[[int, list[float]], None] | None = None) -> list[float]:
    """Train the trainable (adapter) parameters with the loss on answer tokens only; return the loss per step.
    With `checkpoint`, state is saved every `checkpoint_every` steps and a later call resumes from it. After each
    step s in `snapshots`, on_snapshot(s, losses so far) sees the model as it is then (a learning curve's adapter:
    the learning rate is constant and the data order ignores `steps`, so it is exactly an s-step run's adapter)."""
    pairs = [encode_pair(tokenizer, prompt, target) for prompt, target in texts]
    pad = pad_id(tokenizer)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    order = torch.Generator().manual_seed(seed)
    saved = _Checkpoint(checkpoint)
    queue, losses = saved.restore(model, optimizer, order) or ([], [])
    if losses:
        log.info("%s: resuming from the checkpoint after step %d", desc, len(losses))
    model.train()
    for step in progress(range(len(losses), steps), desc=desc):
        if len(queue) < batch_size:  # walk through the data in seeded epochs so every question is seen evenly
            queue += torch.randperm(len(pairs), generator=order).tolist()
        batch, queue = queue[:batch_size], queue[batch_size:]
        ids, mask, labels = _collate([pairs[i] for i in batch], pad, device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_snapshot is not None and step + 1 in snapshots:
            on_snapshot(step + 1, list(losses))
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            saved.save(model, optimizer, order, queue, losses)
    model.eval()
    saved.remove()  # the finished adapter is what the cache keeps
    log.info("%s: loss %.4f -> %.4f", desc, losses[0], losses[-1])
    return losses
