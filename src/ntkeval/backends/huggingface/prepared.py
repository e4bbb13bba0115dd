"""A model checkpoint built once into the cache and then only read: the embedded model (converted from a GGUF file)
and mathglm-tiny (trained here) share this. Safe against concurrent and killed runs: one process builds under a file
lock in a work dir beside the target, writes a marker file last and renames the dir into place; a dir without its
marker is a killed build and is rebuilt."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)
MARKER = "ntkeval-source.json"  # written last inside the staging dir: records what the checkpoint was built from


def prepared(target: Path, build: Callable[[Path, Path], dict]) -> Path:
    """`target`, built first if absent: build(work_dir, staging) writes the checkpoint into `staging` (work_dir is
    scratch space beside it) and returns the record the marker file keeps."""
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / MARKER).is_file():  # another process finished it while we waited
            return target
        remove_leftovers(target)
        # The work dir sits beside the target so the final rename stays on one filesystem, hence atomic.
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.tmp-", dir=target.parent) as work:
            staging = Path(work) / "checkpoint"
            record = build(Path(work), staging)
            (staging / MARKER).write_text(json.dumps(record, indent=1))
            os.replace(staging, target)
    log.info("checkpoint ready at %s", target)
    return target


def remove_leftovers(target: Path) -> None:
    """Delete work dirs of killed runs and a target without its marker; only called while holding the lock."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        log.info("removing leftover %s", stale)
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        log.warning("removing incomplete checkpoint %s", target)
        shutil.rmtree(target)
