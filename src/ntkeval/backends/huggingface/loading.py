"""What the model loaders share: their base class (cache key, session), device and dtype choice, tokenizer settings,
loading a checkpoint dir."""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ntkeval.backends.huggingface.dtypes import loaded_dtype
from ntkeval.backends.huggingface.session import HFSession

log = logging.getLogger(__name__)


class HFLoader:
    """The base of the hub, embedded and tiny loaders: a subclass sets name and lora_target_modules and defines
    identity() and load(device) -> (model, tokenizer)."""

    def key(self, device: str) -> dict:
        """identity() with the dtype really loaded on `device` (half precision on CPU loads float32)."""
        identity = dict(self.identity())
        if "dtype" in identity:
            identity["dtype"] = loaded_dtype(identity["dtype"], device)
        return identity

    def session(self, device: str) -> HFSession:
        return HFSession(self, device)


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'; any other value is returned unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def torch_dtype(name: str, device: str) -> torch.dtype:
    """The torch dtype to load weights in: `name`, except that half precision on CPU becomes float32.

    bfloat16 matmuls on CPU are many times slower than float32 and round log-probabilities coarsely, so a 7B model
    configured for a GPU still gives usable numbers when someone runs it on a CPU.
    """
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"unknown dtype {name!r}; use e.g. float32, bfloat16, float16")
    loaded = loaded_dtype(name, resolve_device(device))  # the same rule the cache keys use
    if loaded != name:
        log.warning("dtype %s requested on CPU: loading in %s instead (half precision is slow on CPU)", name, loaded)
    return getattr(torch, loaded)


def finish_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token (its EOS when it has none) and right padding, which the scorer assumes."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_pretrained(path: str, device: str, dtype: str, revision: str | None = None,
                    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a hub id or local dir, in eval mode on `device`."""
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    # device_map puts weights straight onto the GPU instead of staging a 14 GB copy of a 7B model in CPU memory.
    model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch_dtype(dtype, device),
                                                 device_map=device)
    model.eval()
    return model, finish_tokenizer(tokenizer)
