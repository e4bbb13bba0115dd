"""A model's shape without its weights: the exact parameter count and the sizes the memory formulas need, read from
the transformers config a loader gives (model_config()) by instantiating the model on PyTorch's meta device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    parameters: int      # every parameter of the model as loaded, tied embeddings counted once
    layers: int          # transformer blocks
    hidden: int          # residual stream width h
    heads: int           # attention heads a
    kv_heads: int        # key/value heads (fewer than heads: grouped-query attention)
    head_dim: int
    intermediate: int    # MLP width
    vocab: int
    linears: tuple[tuple[str, int, int], ...]  # (module name, in features, out features) of every nn.Linear

    @property
    def kv_width(self) -> int:
        """Width of the keys (and of the values) one token stores per layer: kv_heads x head_dim."""
        return self.kv_heads * self.head_dim

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    def lora_parameters(self, lora_config: Any) -> tuple[int, int]:
        """(parameters, activation width) of a LoRA adapter with `lora_config` (a peft.LoraConfig, target modules
        filled): r x (in + out) parameters per adapted linear, A being r x in and B out x r (Hu et al. 2021, LoRA,
        sec. 4.1), and in + r numbers per token that its backward pass keeps (the input and x A). Modules are
        matched by peft's own rule, so the count is the adapter peft builds."""
        from peft.tuners.tuners_utils import check_target_module_exists

        total, width = 0, 0
        for name, features_in, features_out in self.linears:
            match = check_target_module_exists(lora_config, name)
            if match and type(match).__name__ != "_ExcludedModule":  # peft's marker of an excluded module
                rank = _rank(lora_config, name)
                total += rank * (features_in + features_out)
                width += features_in + rank
        return total, width


def _rank(lora_config: Any, name: str) -> int:
    """The module's rank: lora_config.r unless its rank_pattern names the module (peft's rule: suffix match)."""
    for pattern, rank in (getattr(lora_config, "rank_pattern", None) or {}).items():
        if name == pattern or name.endswith(f".{pattern}"):
            return int(rank)
    return int(lora_config.r)


def architecture(config: Any) -> Architecture:
    """The Architecture of a transformers config: the model class AutoModelForCausalLM would build is instantiated on
    the meta device (shapes, no memory, ~1 s for a 7B model), so the parameter count is exactly the loaded model's."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(text.num_attention_heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    intermediate = getattr(text, "intermediate_size", None) or getattr(text, "ffn_dim", None) or 4 * hidden
    linears = tuple((name, int(module.in_features), int(module.out_features))
                    for name, module in model.named_modules() if isinstance(module, torch.nn.Linear))
    return Architecture(parameters=sum(p.numel() for p in model.parameters()), layers=int(text.num_hidden_layers),
                        hidden=hidden, heads=heads, kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
                        head_dim=head_dim, intermediate=int(intermediate), vocab=int(text.vocab_size),
                        linears=linears)
