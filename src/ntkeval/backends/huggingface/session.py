"""The Hugging Face model session (ntkeval.backends.base.ModelSession): one model per cell, loaded on first use only,
with LoRA adapters added, trained, saved and switched on it (never reloaded)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ntkeval.backends.base import GradientSpec, TrainingSettings
from ntkeval.backends.huggingface.gradients import session_gradients
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.policy_training import PolicyLog, PolicySettings, RewardFunction, train_policy
from ntkeval.backends.huggingface.training import train_lora

log = logging.getLogger(__name__)


class HFSession:
    def __init__(self, loader, device: str = "cpu"):
        self.loader = loader    # a model loader from conf/model: .load(device) -> (model, tokenizer)
        self.device = device
        self._model = None
        self._tokenizer = None
        self._peft = None       # the PeftModel wrapping the base once the first adapter arrives
        self._adapters: set[str] = set()
        self._as_loaded: str | None = None  # a fingerprint of the model's settings as loaded (reset() compares)
        self._grad_flags: list[bool] = []   # each parameter's requires_grad as loaded

    def _ensure_loaded(self) -> None:
        if self._model is None:
            start = time.monotonic()
            log.info("loading model %s on %s", self.loader.name, self.device)
            self._model, self._tokenizer = self.loader.load(self.device)
            self._as_loaded = _settings_fingerprint(self._model, self._tokenizer)
            self._grad_flags = [p.requires_grad for p in self._model.parameters()]
            log.info("model %s loaded in %.1f s", self.loader.name, time.monotonic() - start)

    def reset(self) -> bool:
        """Remove every adapter and restore the model as loaded, for the next cell of a process that runs cells in
        turn (ntkeval.backends.session_pool); False when something the cell changed cannot be restored here (its
        config, generation config or tokenizer settings), so the pool drops the model instead."""
        if self._model is None and self._peft is None:
            return True
        for name in sorted(self._adapters):
            self.remove_adapter(name)
        if self._peft is not None:  # adapters the session did not record (a failed add): unwrap the base anyway
            self._model, self._peft = self._peft.unload(), None
        for param, flag in zip(self._model.parameters(), self._grad_flags):
            param.requires_grad_(flag)  # as loaded; peft froze them for the adapters
        self._model.eval()
        now = _settings_fingerprint(self._model, self._tokenizer)
        if now != self._as_loaded:
            changed = sorted(k for k, v in json.loads(now).items() if json.loads(self._as_loaded).get(k) != v)
            log.info("model %s: a cell changed its %s; the next cell loads it afresh", self.loader.name,
                     ", ".join(changed))
        return now == self._as_loaded

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        self._ensure_loaded()
        return self._tokenizer

    @property
    def model(self):
        """The model with whatever adapter is active (the untouched base if none was ever added)."""
        self._ensure_loaded()
        return self._peft if self._peft is not None else self._model

    def new_adapter(self, name: str, config):
        """Add a fresh LoRA adapter, make it the only trainable and active one, and return the model to train."""
        from peft import get_peft_model

        self._ensure_loaded()
        if self._peft is None:
            self._peft = get_peft_model(self._model, config, adapter_name=name)
        else:
            self._peft.add_adapter(name, config)
            self._peft.set_adapter(name)
        self._adapters.add(name)
        for pname, param in self._peft.named_parameters():
            param.requires_grad = f".{name}." in pname and "lora_" in pname
        return self._peft

    def save_adapter(self, name: str, out_dir: Path) -> None:
        self._peft.save_pretrained(str(out_dir), selected_adapters=[name])

    def remove_adapter(self, name: str) -> None:
        """Drop an adapter added here; the model is then exactly as it was without it (the last one unwraps the base
        model: peft cannot disable adapters once none is left)."""
        if name not in self._adapters:
            return
        self._adapters.discard(name)
        if self._adapters:
            if name in self._peft.active_adapters:  # switch first: peft warns when the active adapter goes
                self._peft.set_adapter(min(self._adapters))
            self._peft.delete_adapter(name)
        else:
            self._model, self._peft = self._peft.unload(), None

    def answer_gradients(self, texts: list[tuple[str, str]], spec: GradientSpec, mean: bool = False,
                         batch_size: int = 8, desc: str | None = "gradients"):
        """(vectors, log p per text): gradients of log p(target | prompt) per text, or their mean per answer token
        (mean=True), at the model as loaded plus, for spec.params="lora", a fresh adapter initialised as
        train_adapter would initialise it with spec.seed; removed before returning (gradients.py)."""
        return session_gradients(self, texts, spec, mean=mean, batch_size=batch_size, desc=desc)

    def load_adapter(self, name: str, adapter_dir: Path) -> None:
        """Load a saved adapter under `name` unless it is already here."""
        if name in self._adapters:
            return
        from peft import PeftModel

        self._ensure_loaded()
        path = _adapter_root(adapter_dir, name)
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self._model, str(path), adapter_name=name)
            else:
                self._peft.load_adapter(str(path), adapter_name=name)
        except Exception as error:  # the stage cache verified the files, so this is a peft/format mismatch: name it
            raise RuntimeError(f"cannot load the LoRA adapter in {path} ({type(error).__name__}: {error}); "
                               f"delete {adapter_dir} to retrain it") from error
        self._adapters.add(name)

    def train_adapter(self, name: str, config, texts: list[tuple[str, str]], settings: TrainingSettings,
                      desc: str = "tuning", checkpoint: Path | None = None, out_dir: Path | None = None,
                      on_snapshot: Callable[[int, Path, list[float]], None] | None = None) -> list[float]:
        """Add a fresh LoRA adapter (`config`: a peft.LoraConfig), train it on (prompt, target) texts, save it in
        out_dir; return the loss per step. Resumes from `checkpoint` when a killed run left one. After each step s
        of settings.snapshots, on_snapshot(s, a temporary directory holding the adapter saved then, the losses)."""
        name, loaded = self._training_name(name), name
        torch.manual_seed(settings.seed)  # the same adapter initialisation for every learner of one seed
        model = self.new_adapter(name, config)

        def snapshot(step: int, losses: list[float]) -> None:
            with tempfile.TemporaryDirectory(prefix="ntkeval-snapshot-") as folder:
                self.save_adapter(name, Path(folder))
                on_snapshot(step, Path(folder), losses)

        loss = train_lora(model, self.tokenizer, texts, settings.steps, settings.batch_size, settings.lr,
                          settings.weight_decay, settings.seed, desc=desc, checkpoint=checkpoint,
                          checkpoint_every=settings.checkpoint_every, snapshots=tuple(settings.snapshots),
                          on_snapshot=snapshot if on_snapshot is not None else None)
        if out_dir is not None:
            self.save_adapter(name, out_dir)
        if name != loaded:
            self.remove_adapter(name)  # the session keeps the adapter it had under that name, unchanged
        return loss

    def _training_name(self, name: str) -> str:
        """`name`, or a free name when an adapter of that name is already loaded here: a learning curve's size
        trains under its learner's name while the full adapter of that name is loaded for scoring (its cache was
        filled before the curve was asked for), and the loaded adapter must stay what it is."""
        if name not in self._adapters:
            return name
        number = 2
        while f"{name}#{number}" in self._adapters:
            number += 1
        return f"{name}#{number}"

    def train_policy(self, name: str, config, prompts: list[str], reward: RewardFunction, settings: PolicySettings,
                     desc: str = "GRPO", checkpoint: Path | None = None, out_dir: Path | None = None) -> PolicyLog:
        """Add a fresh LoRA adapter and train it with GRPO on `prompts` scored by `reward` (policy_training), save
        it in out_dir; return the loss and mean rewards per step. Resumes from `checkpoint` when a killed run left one."""
        name, loaded = self._training_name(name), name
        torch.manual_seed(settings.seed)  # the same adapter initialisation for every learner of one seed
        model = self.new_adapter(name, config)
        use_cache = self._model.config.use_cache
        try:
            trained = train_policy(model, self.tokenizer, prompts, reward, settings, adapter=name,
                                   checkpoint=checkpoint, desc=desc)
        finally:  # TRL's trainer turns the key/value cache off for training; sampling after it needs it back
            self._model.config.use_cache = use_cache
        if out_dir is not None:
            self.save_adapter(name, out_dir)
        if name != loaded:
            self.remove_adapter(name)
        return trained

    @contextmanager
    def language_model(self, adapter: str | None) -> Iterator[HFLanguageModel]:
        """The model with `adapter` active (every adapter disabled when None), as a LanguageModel."""
        with self.using(adapter) as model:
            yield HFLanguageModel(model, self.tokenizer)

    @contextmanager
    def using(self, adapter: str | None):
        """The model to score with: `adapter` active, or every adapter disabled when None."""
        self._ensure_loaded()
        model = self.model
        model.eval()
        if self._peft is None:
            if adapter is not None:
                raise RuntimeError(f"adapter {adapter!r} was never loaded")
            yield model
        elif adapter is None:
            with self._peft.disable_adapter():
                yield model
        else:
            self._peft.set_adapter(adapter)
            yield model


def _adapter_root(adapter_dir: Path, name: str) -> Path:
    """peft saves a non-default adapter in a subfolder named after it; loaded under another name (a learning curve's
    adapters sit beside the full ones in one session), the one subfolder that holds an adapter."""
    root = Path(adapter_dir)
    for candidate in (root / name, root):
        if (candidate / "adapter_config.json").exists():
            return candidate
    found = sorted(root.glob("*/adapter_config.json"))
    return found[0].parent if len(found) == 1 else root


def _settings_fingerprint(model, tokenizer) -> str:
    """What a cell could change on a loaded model besides its adapters: model and generation configs, tokenizer
    padding; LoRA layers left behind would show as a PEFT config or a lora module name."""
    generation = getattr(model, "generation_config", None)
    lora = [name for name, _ in model.named_modules() if "lora_" in name][:1]
    return json.dumps({"config": model.config.to_json_string(use_diff=False),
                       "generation": generation.to_json_string(use_diff=False) if generation is not None else None,
                       "peft": hasattr(model, "peft_config"), "lora": lora,
                       "pad": [tokenizer.pad_token, tokenizer.padding_side]}, sort_keys=True)
