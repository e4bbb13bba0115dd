"""A second model for sampling tests: a tiny model with a fixed bias added to its logits (known probability ratios)."""

import torch


class LogitBias(torch.nn.Module):
    """Another model: the wrapped one with `bias` added to its logits."""

    def __init__(self, base, bias: torch.Tensor):
        super().__init__()
        self.base = base
        self.generation_config = base.generation_config
        self.register_buffer("bias", bias)

    def forward(self, *args, **kwargs):
        out = self.base(*args, **kwargs)
        out.logits = out.logits + self.bias.to(out.logits.dtype)
        return out
