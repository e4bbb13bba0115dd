"""Fakes for the sampling tests: a second model (a tiny one with a fixed bias on its logits, so probability ratios are
known) and a data set that counts every readable integer as correct."""

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


class AnyInteger:
    """A data set whose every readable integer answer counts as correct."""
    name = "any-integer"

    def answer_kind(self, example):
        return "integer"

    def is_correct(self, example, given):
        return True
