"""What this machine offers, found without importing torch: CUDA GPUs, local paths, writable folders.

The command line is checked in well under two seconds; importing torch alone takes several on a small machine, so
the GPU question is answered from torch's build record and the NVIDIA driver's files instead. Where those cannot
tell (a ROCm build, WSL, a platform without /proc) the answer is "unknown" and nothing is refused.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

EXPECTED_PATH = {
    "file": "an existing file",
    "model": "a hub id (owner/name) or an existing local checkpoint directory (with config.json)",
}
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the loaded NVIDIA driver sees
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # owner/name, or a bare name of the hub's older models


@dataclass(frozen=True)
class Gpus:
    count: int | None  # None: cannot tell without importing torch
    why: str           # what the count rests on, for a message


def torch_cuda_build() -> str | None:
    """torch's own record of what it was built for (torch/version.py, read as text, not imported): see build_record."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        return build_record((Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text())
    except OSError:
        return None


def build_record(version_py: str) -> str | None:
    """The CUDA version torch/version.py names, 'cpu' for a CPU-only build, None when it cannot tell (or for a ROCm
    build, whose GPUs the NVIDIA driver files do not list)."""
    values = dict(re.findall(r"^(cuda|hip)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", version_py, re.M))
    if values.get("hip", "None") != "None" or "cuda" not in values:
        return None
    return "cpu" if values["cuda"] == "None" else values["cuda"].strip("'\"")


def cuda_gpus() -> Gpus:
    """How many CUDA GPUs a process started here would see."""
    build = torch_cuda_build()
    if build == "cpu":
        return Gpus(0, "the installed torch is a CPU-only build")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return Gpus(0, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU")
    if NVIDIA_GPUS.is_dir():
        count = len(list(NVIDIA_GPUS.iterdir()))
        if visible is not None:
            count = min(count, len([v for v in visible.split(",") if v.strip()]))
        return Gpus(count, f"the NVIDIA driver lists {count} GPU(s)")
    if sys.platform == "linux" and not Path("/dev/dxg").exists():  # /dev/dxg: WSL's GPU, unseen by /proc
        return Gpus(0, "no NVIDIA driver is loaded (/proc/driver/nvidia is absent)")
    return Gpus(None, "unknown")


def device_problem(device: str) -> str | None:
    """Why `device` cannot run here (None if it can, or if that cannot be told cheaply)."""
    kind, _, index = device.partition(":")
    if kind == "mps" and sys.platform != "darwin":
        return "mps is Apple's GPU, on macOS only"
    if kind != "cuda":
        return None
    gpus = cuda_gpus()
    if gpus.count is None:
        return None
    wanted = int(index or 0)
    if gpus.count <= wanted:
        return f"no CUDA GPU {wanted} on this machine: {gpus.why}"
    return None


def path_problem(value: str, kind: str) -> str | None:
    """Why a configured path is unusable here; a `model` path that reads as a hub id is left to the hub."""
    path = Path(value).expanduser()
    if kind == "model":
        if HUB_ID.match(value) and not path.exists():
            return None
        if not path.is_dir():
            return f"no directory {str(path)!r} here" if not path.exists() else f"{str(path)!r} is not a directory"
        if not (path / "config.json").is_file():
            return f"{str(path)!r} holds no config.json"
        return None
    if not path.is_file():
        return f"no file {str(path)!r} here"
    return None


def writable_problem(path: str | Path) -> str | None:
    """Why files cannot be written into this folder or the nearest existing folder it would be created in (None if
    they can). Nothing is left behind."""
    folder = Path(path).expanduser().absolute()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".ntkeval-write-check"):
            pass
    except OSError as error:
        return f"cannot create a file in {existing}: {error.strerror}"
    return None
