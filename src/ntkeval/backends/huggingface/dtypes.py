"""Which dtype a model is really loaded in: the configured one, except that half precision on CPU becomes float32.

Plain strings and no torch import, so cache keys and result identities can name the loaded dtype cheaply.
"""

from __future__ import annotations

HALF_DTYPES = ("bfloat16", "float16")  # slow on CPU, and bfloat16 rounds log-probabilities visibly


def loaded_dtype(name: str, device: str) -> str:
    """The dtype weights configured as `name` are loaded in on `device` ('cpu', 'cuda', 'cuda:1', ...)."""
    if name in HALF_DTYPES and str(device).split(":")[0] == "cpu":
        return "float32"
    return name
