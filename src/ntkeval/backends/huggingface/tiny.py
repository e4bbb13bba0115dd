"""Tiny randomly initialised Llama or Mistral models with in-process tokenizers: no files, no network, < 1 s.

They exist for tests and for trying the pipeline end to end; their answers are noise, but deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ntkeval.backends.huggingface import tiny_tokenizers
from ntkeval.backends.huggingface.loading import HFLoader, finish_tokenizer, resolve_device

# Bump when the tokenizers or the initialisation change, so cached results of older tiny models are not reused.
TINY_VERSION = 1
# arch -> (config class, model class, tokenizer builder): Llama gets the sentencepiece-style tokenizer with BOS,
# Mistral the byte-level one without, so both leading-space conventions are covered by the two tiny models.
_ARCHES = {
    "llama": (LlamaConfig, LlamaForCausalLM, tiny_tokenizers.llama_style),
    "mistral": (MistralConfig, MistralForCausalLM, tiny_tokenizers.gpt2_style),
}


class TinyModel(HFLoader):
    """A seeded random causal LM; `arch` picks the architecture and its tokenizer convention."""

    def __init__(self, name: str = "tiny", arch: str = "llama", seed: int = 0, hidden_size: int = 64,
                 num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
                 max_positions: int = 1024, initializer_range: float = 0.02,
                 lora_target_modules: Sequence[str] = ("q_proj", "v_proj")):
        if arch not in _ARCHES:
            raise ValueError(f"unknown tiny arch {arch!r}; valid choices: {', '.join(_ARCHES)}")
        self.name = name
        self.arch = arch
        self.seed = seed
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.intermediate_size = intermediate_size
        self.max_positions = max_positions
        self.initializer_range = initializer_range
        self.lora_target_modules = list(lora_target_modules)

    def identity(self) -> dict:
        return {"kind": "tiny", "version": TINY_VERSION, "name": self.name, "arch": self.arch, "seed": self.seed,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "num_heads": self.num_heads,
                "num_kv_heads": self.num_kv_heads, "intermediate_size": self.intermediate_size,
                "max_positions": self.max_positions, "initializer_range": self.initializer_range}

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The in-process tokenizer of the arch (built in milliseconds; load() uses the same)."""
        return finish_tokenizer(_ARCHES[self.arch][2]())

    def model_config(self, tokenizer: PreTrainedTokenizerBase | None = None):
        """The transformers config load() instantiates (no weights): the memory estimate counts its parameters."""
        tokenizer = tokenizer if tokenizer is not None else self.load_tokenizer()
        return _ARCHES[self.arch][0](
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, max_position_embeddings=self.max_positions,
            initializer_range=self.initializer_range, tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)

    def load(self, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        model_class = _ARCHES[self.arch][1]
        tokenizer = self.load_tokenizer()
        config = self.model_config(tokenizer)
        # A private RNG stream: the weights depend on `seed` alone, and the caller's global RNG state (which seeds
        # LoRA initialisation and batch order) is left exactly as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = model_class(config)
        model.to(resolve_device(device)).eval()
        return model, tokenizer

    def __repr__(self) -> str:
        return f"TinyModel(name={self.name!r}, arch={self.arch!r}, seed={self.seed})"
