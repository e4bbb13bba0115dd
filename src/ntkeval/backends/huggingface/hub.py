"""A model from the Hugging Face hub or a local checkpoint dir, e.g. `model=codellama model.path=/data/codellama`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ntkeval.backends.huggingface.loading import HFLoader, load_pretrained, offline_config, offline_tokenizer


class HubModel(HFLoader):
    """Loads `path` (a hub id such as codellama/CodeLlama-7b-hf, or a local dir) with AutoModelForCausalLM.

    dtype is what the weights are loaded in on a GPU; on CPU, bfloat16 and float16 become float32 (with a warning)
    because half precision there is slow and inexact.
    """

    def __init__(self, name: str, path: str, dtype: str = "bfloat16", revision: str | None = None,
                 lora_target_modules: Sequence[str] = ("q_proj", "v_proj")):
        self.name = name
        self.path = str(path)
        self.dtype = dtype
        self.revision = revision
        self.lora_target_modules = list(lora_target_modules)

    def _local_dir(self) -> Path | None:
        local = Path(self.path).expanduser()
        return local.resolve() if local.is_dir() else None

    def identity(self) -> dict:
        """Name, source, revision and dtype: what determines the weights. A local dir is keyed by its absolute path."""
        local = self._local_dir()
        source = str(local) if local is not None else self.path
        return {"kind": "hub", "name": self.name, "path": source, "revision": self.revision, "dtype": self.dtype}

    def load(self, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        local = self._local_dir()
        return load_pretrained(str(local) if local is not None else self.path, device, self.dtype, self.revision)

    def _source(self) -> str:
        local = self._local_dir()
        return str(local) if local is not None else self.path

    def model_config(self):
        """The checkpoint's config.json, from the local dir or the Hugging Face cache (never the network)."""
        return offline_config(self._source(), self.revision)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        return offline_tokenizer(self._source(), self.revision)

    def __repr__(self) -> str:
        return f"HubModel(name={self.name!r}, path={self.path!r}, dtype={self.dtype!r}, revision={self.revision!r})"
