"""Content-addressed cache of expensive stages (scores, samples, adapters): keys hash exactly what determines a
result, writes are atomic (write, then rename), a lock per entry keeps two processes from computing it twice, and
every entry carries the cache format it was written in and a sha256 of its payload (a directory: of every file), so
a damaged, edited, foreign or outdated entry is rebuilt with one warning naming its file, never used or crashed on.
Temporary entries left by killed jobs are removed once nobody holds their lock and they are old enough."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ntkeval.errors import UserError

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # what an entry looks like; 1 (no "format") had no checksums and is rebuilt on sight
MANIFEST = "manifest.json"  # a directory entry's format, key and per-file sha256, written just before COMPLETE
COMPLETE = ".complete"
CHECKPOINTS = "checkpoints"  # resumable tuning state, one folder per entry key (ntkeval.backends.huggingface.training)
_TEMP = re.compile(r"^\.([0-9a-f]{20})\.")  # mkdtemp/mkstemp names of unfinished entries: .<key>.<random>

_ABSENT = object()  # what reading a missing or unusable record gives (a stored value may be None)
Check = Callable[[Any], "str | None"]  # what is wrong with a value or directory, or None when it is as expected


def stable_hash(parts: Any, length: int = 20) -> str:
    """A short hex digest of a JSON-serialisable value, independent of dict order and of the process."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _as_stored(value: Any) -> Any:
    """`value` as a JSON round trip gives it back: what a later read of the entry returns."""
    return json.loads(json.dumps(value, default=str))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class Checked:
    """A compute function with the check its value must pass, for callers that hand the cache only a callable
    (SkillView.record(stage, compute)); StageCache.record applies `check` to what it reads and what it computes."""
    compute: Callable[[], Any]
    check: Check

    def __call__(self) -> Any:
        return self.compute()


class StageCache:
    """Entries live at <root>/<kind>/<key>.json (records) or <root>/<kind>/<key>/ (directories such as adapters)."""

    def __init__(self, root: str | os.PathLike, orphan_hours: float = 24.0):
        if isinstance(orphan_hours, bool) or not isinstance(orphan_hours, (int, float)) or not orphan_hours >= 0:
            raise UserError(f"cache_orphan_hours={orphan_hours!r} is invalid; valid: a number of hours >= 0 "
                            "(temporary cache entries left by killed jobs are removed after this long)")
        self.root = Path(root).expanduser()
        self.orphan_hours = float(orphan_hours)
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self.compute_s: dict[str, float] = {}  # seconds spent computing entries, per kind (calibration reads it)
        self._children_s = 0.0  # seconds of entries computed inside the one being computed
        self.lock_wait_s = 0.0  # seconds spent waiting for another process's lock on an entry (the sweep summary)
        self._warned: set[Path] = set()  # one warning per damaged entry, however often this process reads it
        self._swept = False

    @contextmanager
    def _lock(self, kind: str, key: str):
        """The entry's lock, held for the block; time spent waiting for another holder counts in lock_wait_s."""
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / f"{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            start = time.monotonic()
            log.info("waiting for another process to finish %s entry %s", kind, key)
            lock.acquire()
            self.lock_wait_s += time.monotonic() - start
        try:
            yield lock
        finally:
            lock.release()

    @contextmanager
    def _computing(self, kind: str):
        """Count a computed entry: a miss, and its own seconds in compute_s (an entry computed inside another, an
        adapter trained for a score, counts for its own kind only)."""
        self._count(self.misses, kind)
        start, outer_children = time.monotonic(), self._children_s
        self._children_s = 0.0
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.compute_s[kind] = self.compute_s.get(kind, 0.0) + elapsed - self._children_s
            self._children_s = outer_children + elapsed

    def _count(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1

    def _warn(self, path: Path, problem: str, action: str = "rebuilding it") -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("cache entry %s %s; %s", path, problem, action)

    def has(self, kind: str, parts: dict) -> bool:
        """Whether a sound entry exists (a record that passes its checksum, or a directory whose manifest lists
        files of the recorded sizes; their hashes are checked when the directory is used). Never warns."""
        key = stable_hash(parts)
        folder = self.root / kind
        if (folder / key).exists():
            return _directory_problem(folder / key, parts, hash_files=False) is None
        value, problem = self._load(folder / f"{key}.json", parts, None)
        return value is not _ABSENT and problem is None

    # Records (JSON) ---------------------------------------------------------------------------------------------
    def _load(self, path: Path, parts: dict, check: Check | None) -> tuple[Any, str | None]:
        """(value, None) for a sound entry, (_ABSENT, None) when there is none, (_ABSENT, problem) when it is
        unusable."""
        try:
            entry = json.loads(path.read_bytes().decode())
        except FileNotFoundError:
            return _ABSENT, None
        except (OSError, ValueError) as error:  # ValueError: truncated JSON, garbage bytes (UnicodeDecodeError)
            return _ABSENT, f"cannot be parsed ({type(error).__name__}: {error})"
        if not isinstance(entry, dict) or "sha256" not in entry:
            return _ABSENT, "has no checksum (written by an older ntkeval)"
        if entry.get("format") != CACHE_FORMAT:
            return _ABSENT, f"is in cache format {entry.get('format')!r}, not {CACHE_FORMAT}"
        if entry.get("key") != _as_stored(parts):
            return _ABSENT, "holds another key"
        value = entry.get("value")
        if entry["sha256"] != _digest(value):
            return _ABSENT, "fails its checksum (edited or damaged)"
        problem = check(value) if check is not None else None
        if problem:
            return _ABSENT, f"does not hold what this stage expects ({problem})"
        return value, None

    def peek(self, kind: str, parts: dict, check: Check | None = None) -> Any | None:
        """The cached record for `parts`, or None; never computes (for readers such as loggers)."""
        path = self.root / kind / f"{stable_hash(parts)}.json"
        value, problem = self._load(path, parts, check)
        if problem:
            self._warn(path, problem, "not using it")
        return None if value is _ABSENT else value

    def record(self, kind: str, parts: dict, compute: Callable[[], Any], check: Check | None = None) -> Any:
        """The cached value for `parts`, computing and storing it once if absent or unusable. `check` (or
        compute.check, see Checked) says what is wrong with a value of the wrong shape."""
        check = check or getattr(compute, "check", None)
        key = stable_hash(parts)
        path = self.root / kind / f"{key}.json"
        self.sweep_orphans()
        value, problem = self._load(path, parts, check)
        if value is not _ABSENT:
            self._count(self.hits, kind)
            return value
        with self._lock(kind, key):
            value, problem = self._load(path, parts, check)  # another process may have finished it while we waited
            if value is not _ABSENT:
                self._count(self.hits, kind)
                return value
            if problem:
                self._warn(path, problem)
            with self._computing(kind):
                value = _as_stored(compute())
            problem = check(value) if check is not None else None
            if problem:  # a bug or a numerical failure, not damage: storing it would rebuild it on every run
                raise RuntimeError(f"stage {kind} computed a value that fails its own check ({problem}); "
                                   f"not caching it as {path}")
            entry = {"format": CACHE_FORMAT, "key": parts, "sha256": _digest(value), "value": value}
            atomic_write_text(path, json.dumps(entry, default=str))
        return value

    # Directories ------------------------------------------------------------------------------------------------
    def peek_directory(self, kind: str, parts: dict, check: Check | None = None) -> Path | None:
        """The verified directory for `parts`, or None; never builds."""
        final = self.root / kind / stable_hash(parts)
        problem = _directory_problem(final, parts, check=check)
        if problem and final.exists():
            self._warn(final, problem, "not using it")
        return None if problem else final

    def directory(self, kind: str, parts: dict, build: Callable[[Path], None], check: Check | None = None) -> Path:
        """A cached directory for `parts`: `build(tmp)` fills a temporary directory, a manifest of its files'
        sha256 is added, and it is renamed into place. Every return verifies the manifest and `check(dir)`."""
        key = stable_hash(parts)
        final = self.root / kind / key
        self.sweep_orphans()
        if _directory_problem(final, parts, check=check) is None:
            self._count(self.hits, kind)
            return final
        with self._lock(kind, key):
            problem = _directory_problem(final, parts, check=check)
            if problem is None:
                self._count(self.hits, kind)
                return final
            if final.exists():
                self._warn(final, problem)
                _discard(final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            try:
                with self._computing(kind):
                    build(tmp)
                (tmp / "key.json").write_text(json.dumps(parts, sort_keys=True, default=str, indent=1))
                problem = check(tmp) if check is not None else None
                if problem:
                    raise RuntimeError(f"stage {kind} built a directory that fails its own check ({problem})")
                _write_manifest(tmp, parts)
                (tmp / COMPLETE).touch()
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return final

    # Orphans ----------------------------------------------------------------------------------------------------
    def sweep_orphans(self) -> list[Path]:
        """Remove, once per cache object, temporary entries (.<key>.*) and tuning checkpoints that a killed job
        left: only those untouched for orphan_hours whose entry lock nobody holds (a live writer holds it)."""
        if self._swept or not self.root.is_dir():
            return []
        self._swept = True
        cutoff = time.time() - self.orphan_hours * 3600
        removed = []
        for entry, locks in _temporary_entries(self.root):
            if _last_touched(entry) < cutoff and _remove_unless_locked(entry, locks):
                log.info("removed %s: a temporary cache entry left by a killed job, untouched for over %g hours",
                         entry, self.orphan_hours)
                removed.append(entry)
        return removed


def _write_manifest(folder: Path, parts: dict) -> None:
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _file_digest(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in (MANIFEST, COMPLETE)}
    (folder / MANIFEST).write_text(json.dumps({"format": CACHE_FORMAT, "key": parts, "files": files},
                                              sort_keys=True, default=str, indent=1))


def _directory_problem(final: Path, parts: dict, check: Check | None = None, hash_files: bool = True) -> str | None:
    """What makes a directory entry unusable, or None; "is absent" when there is none."""
    if not final.exists():
        return "is absent"
    if not (final / COMPLETE).exists():
        return "is incomplete (no .complete marker: a job was killed while writing it)"
    try:
        manifest = json.loads((final / MANIFEST).read_bytes().decode())
    except FileNotFoundError:
        return f"has no {MANIFEST} (written by an older ntkeval)"
    except (OSError, ValueError) as error:
        return f"has an unreadable {MANIFEST} ({type(error).__name__})"
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        return f"has a {MANIFEST} of another cache format"
    if manifest.get("key") != _as_stored(parts):
        return "holds another key"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return f"has a {MANIFEST} that lists no files"
    for name, expected in files.items():
        path = final / name
        if not isinstance(expected, dict):
            return f"has a {MANIFEST} that does not describe {name}"
        if not path.is_file():
            return f"lacks its file {name}"
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return (f"has {name} of {size} bytes, not the {expected.get('bytes')} it was written with "
                    "(truncated or overwritten)")
        if hash_files and _file_digest(path) != expected.get("sha256"):
            return f"has {name} failing its checksum (edited or damaged)"
    problem = check(final) if check is not None and hash_files else None
    return f"does not hold what this stage expects ({problem})" if problem else None


def _discard(folder: Path) -> None:
    """Move a damaged entry out of the way at once (rename is atomic), then delete it; a job killed during the
    delete leaves a .<key>.* folder that sweep_orphans removes later."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.discarded-", dir=folder.parent))
    os.replace(folder, aside / folder.name)
    shutil.rmtree(aside, ignore_errors=True)


def _temporary_entries(root: Path):
    """(entry, the locks whose holder may be writing it) for every unfinished entry and tuning checkpoint."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(folder.iterdir()):
            if folder.name == CHECKPOINTS:  # checkpoints/<key>/: written by whoever holds <kind>/<key>.lock
                if re.fullmatch(r"[0-9a-f]{20}", entry.name):
                    yield entry, sorted(root.glob(f"*/{entry.name}.lock"))
            elif (match := _TEMP.match(entry.name)) is not None:
                yield entry, [folder / f"{match.group(1)}.lock"]


def _last_touched(entry: Path) -> float:
    """The newest modification time of an entry and everything in it (inf if it changed while we looked)."""
    try:
        paths = [entry, *entry.rglob("*")] if entry.is_dir() else [entry]
        return max(p.lstat().st_mtime for p in paths)
    except OSError:
        return math.inf  # it changed under us: somebody is using it


def _remove_unless_locked(entry: Path, locks: list[Path]) -> bool:
    """Delete `entry` while holding every lock it may belong to; False if any lock is held (a live writer)."""
    held = []
    try:
        for path in locks:
            lock = FileLock(str(path), timeout=0)
            lock.acquire()
            held.append(lock)
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        return not entry.exists()
    except Timeout:
        return False
    finally:
        for lock in held:
            lock.release()


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
