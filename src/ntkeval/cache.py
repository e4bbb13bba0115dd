"""Content-addressed cache of expensive stages (scores, adapters): keys hash exactly what determines a result,
writes are atomic (write, then rename), and a lock per entry keeps two processes from computing it twice."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

log = logging.getLogger(__name__)


def stable_hash(parts: Any, length: int = 20) -> str:
    """A short hex digest of a JSON-serialisable value, independent of dict order and of the process."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class StageCache:
    """Entries live at <root>/<kind>/<key>.json (records) or <root>/<kind>/<key>/ (directories such as adapters)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}

    def _lock(self, kind: str, key: str) -> FileLock:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / f"{key}.lock"))

    def _count(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1

    def has(self, kind: str, parts: dict) -> bool:
        """Whether a complete entry exists (a record that parses, or a directory marked complete)."""
        key = stable_hash(parts)
        folder = self.root / kind
        return self._read_record(folder / f"{key}.json") is not None or (folder / key / ".complete").exists()

    # Records (JSON) ---------------------------------------------------------------------------------------------
    def _read_record(self, path: Path) -> Any | None:
        try:
            entry = json.loads(path.read_text())
            return entry["value"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("cache entry %s is corrupt; rebuilding it", path)
            return None

    def peek(self, kind: str, parts: dict) -> Any | None:
        """The cached record for `parts`, or None; never computes (for readers such as loggers)."""
        return self._read_record(self.root / kind / f"{stable_hash(parts)}.json")

    def record(self, kind: str, parts: dict, compute: Callable[[], Any]) -> Any:
        """The cached value for `parts`, computing and storing it once if absent (or corrupt)."""
        key = stable_hash(parts)
        path = self.root / kind / f"{key}.json"
        value = self._read_record(path)
        if value is None:
            with self._lock(kind, key):
                value = self._read_record(path)  # another process may have finished it while we waited
                if value is None:
                    self._count(self.misses, kind)
                    value = compute()
                    text = json.dumps({"key": parts, "value": value}, default=str)
                    atomic_write_text(path, text)
                    return value
        self._count(self.hits, kind)
        return value

    # Directories ------------------------------------------------------------------------------------------------
    def directory(self, kind: str, parts: dict, build: Callable[[Path], None]) -> Path:
        """A cached directory for `parts`; `build(tmp)` fills a temporary directory that is then renamed into place."""
        key = stable_hash(parts)
        final = self.root / kind / key
        if (final / ".complete").exists():
            self._count(self.hits, kind)
            return final
        with self._lock(kind, key):
            if (final / ".complete").exists():
                self._count(self.hits, kind)
                return final
            self._count(self.misses, kind)
            if final.exists():  # a half-written directory from a killed job: never trusted
                log.warning("cache entry %s is incomplete; rebuilding it", final)
                shutil.rmtree(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            try:
                build(tmp)
                (tmp / "key.json").write_text(json.dumps(parts, sort_keys=True, default=str, indent=1))
                (tmp / ".complete").touch()
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return final


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
