"""What the model loaders share: their base class (cache key, session), device and dtype choice, tokenizer settings,
loading a checkpoint dir."""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ntkeval.backends.huggingface.dtypes import loaded_dtype
from ntkeval.backends.huggingface.session import HFSession

log = logging.getLogger(__name__)


class NotAvailableOffline(LookupError):
    """A model's config or tokenizer cannot be had without downloading (or preparing) the model: the dry run's memory
    estimate then says "unknown" for its jobs instead of guessing."""


class HFLoader:
    """The base of the hub, embedded and tiny loaders: a subclass sets name and lora_target_modules and defines
    identity() and load(device) -> (model, tokenizer), and model_config() and load_tokenizer() when it can say its
    architecture and tokenizer without loading weights (the dry run's memory estimate asks)."""

    def model_config(self):
        """The transformers config of the model load() returns, without weights or network; NotAvailableOffline when
        it cannot be had so."""
        raise NotAvailableOffline(f"{type(self).__name__} cannot say its architecture without loading its weights")

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer load() returns, without weights or network; NotAvailableOffline when it cannot be had so."""
        raise NotAvailableOffline(f"{type(self).__name__} cannot give its tokenizer without loading its weights")

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


def offline_config(path: str, revision: str | None = None):
    """The transformers config of a checkpoint dir or hub id, read from the dir or the Hugging Face cache only: a
    dry run must not wait on the network (an unreachable hub costs ~25 s of retries per model)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, revision=revision, local_files_only=True)
    except (OSError, ValueError):
        raise NotAvailableOffline(f"the config of {path} is neither a local dir nor in the Hugging Face cache, and a "
                                  f"dry run does not download (`hf download {path} config.json tokenizer.json "
                                  f"tokenizer_config.json` once, or model.path=<a local copy>)") from None


def offline_tokenizer(path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a checkpoint dir or hub id (as load_pretrained finishes it), from the dir or the Hugging Face
    cache only."""
    try:
        return finish_tokenizer(AutoTokenizer.from_pretrained(path, revision=revision, local_files_only=True))
    except (OSError, ValueError) as error:
        raise NotAvailableOffline(f"the tokenizer of {path} is neither a local dir nor in the Hugging Face cache "
                                  f"({type(error).__name__})") from None


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
