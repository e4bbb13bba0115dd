"""Mirror a cell to Weights & Biases (offline by default, no account) or to nothing; the only module that imports wandb.

Hydra builds a factory from conf/logger/*.yaml (`WandbLogger` or `NoLogger`); the cell calls `.start(...)` and gets a
`Tracker`. Results on disk are the source of truth, so a W&B failure only logs a warning and mirroring stops; a run
whose files could not be completed is deleted by the cell and rebuilt from its results on the rerun
(`WandbLogger.has_complete_run`).
Offline runs land in <dir>/wandb/offline-run-<time>-<run id>, one per run id: a rerun replaces the earlier attempt's
directory (see `WandbLogger.start`). Upload them later with `wandb sync <run dir>`; tests read one back with
tests/wandb_offline.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ntkeval.errors import choices_error
from ntkeval.tracking.base import NullTracker, Tracker, no_room_left

log = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")

# Quiet, fast, network-free defaults, set as W&B's own environment variables so that a user's setting wins.
# Measured with wandb 0.31: the first start in a process costs ~0.5 s (it spawns the wandb-core service, which later
# runs in the same process reuse); each later start+finish drops from ~0.1 s to ~0.015 s with these.
_ENV_DEFAULTS = {
    "WANDB_SILENT": "true",                  # no banners; the cell's own log is the console
    "WANDB_CONSOLE": "off",                  # no stdout/stderr wrapping: several cells may run in one process
    "WANDB_DISABLE_GIT": "true",             # git probing is slow on big trees; result.json records code_version
    "WANDB_SAVE_CODE": "false",
    "WANDB__DISABLE_STATS": "true",          # no system-metrics sampler; set to false to watch GPU use online
    "WANDB__DISABLE_META": "true",           # no hardware/environment survey at start
    "WANDB__DISABLE_MACHINE_INFO": "true",
    "WANDB__SAVE_REQUIREMENTS": "false",     # no pip freeze per run
}

# W&B rejects ids with these characters (and URLs read badly with long ones); such ids are hashed by `run_id_for`.
_VALID_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# How long `WandbTracker.finish` waits for wandb-core to write the rest of the run's transaction log (normally ms).
_LOG_COMPLETE_TIMEOUT_S = 30.0
# ... unless its disk is full after this long: then the writer has failed (wandb-core drops the rest of the log on a
# refused write and tells no one), and waiting out the timeout would only delay the fault.
_FULL_DISK_GRACE_S = 1.0


def run_id_for(cell_key: str) -> str:
    """A stable, W&B-valid run id for a cell's identity string, so a requeued cell resumes its run."""
    return hashlib.sha1(cell_key.encode()).hexdigest()[:16]


class WandbLogger:
    """The factory for `logger=wandb`: holds the settings from conf/logger/wandb.yaml and starts one run per cell."""

    def __init__(self, project: str = "ntkeval", entity: str | None = None, mode: str = "offline",
                 tags: list[str] | None = None):
        if mode not in MODES:
            raise choices_error("wandb mode", mode, MODES)
        self.project = project
        self.entity = entity
        self.mode = mode
        self.tags = [str(tag) for tag in tags or []]  # plain strings even when Hydra hands over a ListConfig

    def start(self, *, run_id: str, name: str, group: str, job_type: str, config: dict, dir: str) -> Tracker:
        """Start (or resume: same `run_id`) a run under `dir`/wandb; on a W&B failure, warn and return a NullTracker."""
        if self.mode == "disabled":
            return NullTracker()  # skips spawning the wandb-core service at all
        for key, value in _ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        run_id = run_id if _VALID_RUN_ID.fullmatch(run_id) else run_id_for(run_id)
        try:
            import wandb  # here, not at the top: importing wandb costs ~0.5 s that logger=none should not pay

            Path(dir).mkdir(parents=True, exist_ok=True)
            if self.mode == "offline":
                remove_earlier_attempts(Path(dir), run_id)
            run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, id=run_id, resume="allow",
                             name=name, group=group, job_type=job_type, tags=self.tags, config=config, dir=str(dir),
                             reinit="finish_previous")  # cells run one after another in one process
        except Exception as error:  # W&B mirrors what is on disk; it must never cost a cell its results
            log.warning("W&B could not start run %s (%s: %s); continuing without it", run_id,
                        type(error).__name__, error)
            return NullTracker()
        return WandbTracker(run)

    def has_complete_run(self, *, run_id: str, dir: str) -> bool:
        """Whether `dir` holds this run whole: offline, its offline-run directory with a log that ends in the exit
        record (and no other attempt's); online or disabled, assumed (W&B keeps an online run, a rerun resumes it)."""
        if self.mode != "offline":
            return True
        run_id = run_id if _VALID_RUN_ID.fullmatch(run_id) else run_id_for(run_id)
        runs = _offline_run_dirs(Path(dir), run_id)
        return len(runs) == 1 and _log_is_complete(runs[0] / f"run-{run_id}.wandb")


def _offline_run_dirs(dir: Path, run_id: str) -> list[Path]:
    """The offline-run-<time>-<run_id> directories under `dir`/wandb (and .wandb, where wandb falls back to)."""
    pattern = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?")
    return [path for wandb_dir in (dir / "wandb", dir / ".wandb") if wandb_dir.is_dir()
            for path in sorted(wandb_dir.glob(f"offline-run-*-{run_id}*"))
            if pattern.fullmatch(path.name) and path.is_dir()]


def remove_earlier_attempts(dir: Path, run_id: str) -> list[Path]:
    """Delete the offline run directories an earlier attempt of `run_id` left under `dir` (killed, failed or
    finished), so the attempt about to start is the run's only one. Returns what was removed.

    wandb cannot resume an offline run: every `wandb.init` writes a new offline-run-<time>-<id> directory, whatever
    `resume` says (wandb/wandb#2423, #4624), and `wandb sync` of two directories with one id keeps whichever it syncs
    last (wandb/wandb#3841), possibly the empty one a kill -9 leaves (its log reaches the disk in 32 KiB blocks, the
    tail only at finish). Nothing is lost: an ntkeval cell logs its whole run every attempt (config at start, loss
    curve, kernel row and question table at its end), and a cell's lock keeps two attempts from overlapping.
    """
    removed = _offline_run_dirs(dir, run_id)
    for path in removed:
        shutil.rmtree(path)
    for wandb_dir in (dir / "wandb", dir / ".wandb"):
        _remove_dangling_links(wandb_dir)
    if removed:
        log.info("W&B run %s: replacing the earlier attempt's offline files (%s)", run_id,
                 ", ".join(p.name for p in removed))
    return removed


def _remove_dangling_links(wandb_dir: Path) -> None:
    """wandb/latest-run, debug.log and debug-internal.log link into the newest run; drop links to a removed one."""
    for path in wandb_dir.iterdir() if wandb_dir.is_dir() else ():
        if path.is_symlink() and not path.exists():
            path.unlink(missing_ok=True)


class WandbTracker:
    """A live wandb run behind the Tracker interface; after its first W&B error it stops sending data."""

    def __init__(self, run: Any):
        self._run = run
        self._broken = False
        self._offline = getattr(run, "offline", False) is True
        self._complete = False  # whether the run on disk is whole, known once finished
        self.run_id: str = run.id
        self.run_dir: Path | None = Path(run.sync_dir)
        self._log_file = self.run_dir / f"run-{run.id}.wandb"  # W&B's settings.sync_file: the transaction log

    def log(self, metrics: dict, step: int | None = None) -> None:
        self._send("log", lambda: self._run.log(metrics, step=step))

    def summary(self, values: dict) -> None:
        self._send("summary", lambda: self._run.summary.update(values))

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        import wandb

        # Mixed types are allowed because a column may hold None or switch int/str across skills.
        self._send("table", lambda: self._run.log({key: wandb.Table(columns=columns, data=rows,
                                                                     allow_mixed_types=True)}))

    def image(self, key: str, path: str | Path) -> None:
        import wandb

        self._send("image", lambda: self._run.log({key: wandb.Image(str(path))}))

    def finish(self, exit_code: int = 0) -> bool:
        """Finish the run; whether its files on disk are complete (False: its writer failed, e.g. on a full disk,
        and the caller should `discard()` it rather than leave it cut short)."""
        if self._run is not None:
            self._broken = False  # still try to close the run cleanly after a failed log
            self._send("finish", lambda: self._run.finish(exit_code=exit_code))
            self._run = None
            if not self._offline and not self._log_file.exists():  # online with x_skip_transaction_log: W&B keeps it
                self._complete = True
            elif self._broken:  # finish itself failed: take the log as it is
                self._complete = _log_is_complete(self._log_file)
            else:
                self._complete = self._wait_for_complete_log()
        return self._complete

    def discard(self) -> None:
        """Finish the run as failed without waiting for its log, and delete its local files: after a full disk they
        may be cut short anywhere, and a rerun writes the run whole (see `remove_earlier_attempts`)."""
        if self._run is not None:
            try:
                self._run.finish(exit_code=1)
            except Exception:  # the files go anyway; the cell's own failure is what gets told
                pass
            self._run = None
        self._complete = False
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            _remove_dangling_links(self.run_dir.parent)

    def _wait_for_complete_log(self) -> bool:
        """Block until the run's .wandb log ends with its exit record, so the run on disk is complete on return;
        False if it does not within the timeout, or within a second when the disk holding it is full.

        wandb 0.31's `run.finish()` returns once wandb-core has handled the exit record, but wandb-core writes the
        log 32 KiB block by block and writes the last, partial block only when it closes the run's stream, which
        `finish()` requests without waiting for it (`inform_finish` is fire-and-forget). Read right after `finish()`,
        the log can therefore lack its tail: the last history rows, the final summary, the exit record, or, for a
        small run, everything after the file header. The exit record is the last record W&B writes for a run, so
        its presence means the whole log is on disk. (`wandb.teardown()` would also wait, but it stops the shared
        wandb-core service, so the next cell's start would pay ~0.25 s to spawn it again.)
        """
        start = time.monotonic()
        delay = 0.002
        while not _log_is_complete(self._log_file):
            waited = time.monotonic() - start
            if waited >= _LOG_COMPLETE_TIMEOUT_S or (waited >= _FULL_DISK_GRACE_S and no_room_left(self._log_file)):
                full = " on a full disk" if waited < _LOG_COMPLETE_TIMEOUT_S else ""
                log.warning("W&B run %s: %s still has no exit record %.1f s after finish%s; it is incomplete",
                            self.run_id, self._log_file, waited, full)
                return False
            time.sleep(delay)
            delay = min(2 * delay, 0.1)
        return True

    def _send(self, what: str, call: Callable[[], Any]) -> None:
        if self._run is None or self._broken:
            return
        try:
            call()
        except Exception as error:
            self._broken = True
            log.warning("W&B %s failed for run %s (%s: %s); results on disk are unaffected, mirroring stops",
                        what, self.run_id, type(error).__name__, error)


def _log_is_complete(path: Path) -> bool:
    """Whether a .wandb transaction log ends with the run's exit record (false while its tail is still unwritten)."""
    from wandb.proto import wandb_internal_pb2

    last = None
    try:
        for last in _transaction_records(path):
            pass
    except (OSError, ValueError):  # a chunk caught mid-write fails its checksum; look again later
        return False
    if last is None:
        return False
    record = wandb_internal_pb2.Record()
    record.ParseFromString(last)
    return record.WhichOneof("record_type") == "exit"


# The .wandb transaction log is a LevelDB-style log: a 7-byte file header, then 32 KiB blocks of chunks, each with a
# 7-byte header (CRC-32 seeded with the chunk type, length, type); a record spans chunks FULL or FIRST..MIDDLE..LAST.
_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _transaction_records(path: Path) -> Iterator[bytes]:
    """Yield the serialised Record protobufs of a .wandb file; a record cut off by a crash ends the stream."""
    data = path.read_bytes()
    ident, magic, _version = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = _FILE_HEADER.size, b""
    while pos + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:
            pos += left_in_block  # block trailer too short for a header: zero padding
            continue
        checksum, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:
            pos += left_in_block  # zero-filled rest of a block
            continue
        chunk = data[pos + _CHUNK_HEADER.size:pos + _CHUNK_HEADER.size + length]
        if len(chunk) < length:
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        pos += _CHUNK_HEADER.size + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""
