"""Exclusive locks that name their holder: the command holds its sweep dir and a cell its job dir while they run, so
a second command on the same sweep, or a second copy of a running cell, refuses in one line naming the first.

The lock is fcntl.flock on a file that also holds the holder's pid, host, start time and command; the kernel drops it
when the holder exits, even by kill -9, so a rerun after a crash is never refused. (filelock's FileLock truncates its
file on every attempt, so a refused process could not read who holds it.) flock works on local disks and NFS.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

_HOLDER_WAIT_S = 2.0  # a refused process waits this long for the new holder to write its name
_WHAT_CHARS = 160     # a long sweep command is cut: the refusal stays one readable line


_NO_LOCKS = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}  # flock unsupported here


class Busy(Exception):
    """The lock is held; the message names the holder."""


class HeldLock:
    """A held lock; `release()` (or the process ending) lets the next one in. The file stays: unlinking a lock file
    lets a process that opened it earlier lock a file nobody else can see any more."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *_exc_info) -> None:
        self.release()


def hold(path: str | os.PathLike) -> HeldLock:
    """Take the lock at `path` without waiting, or raise Busy naming its holder (OSError if it cannot be written)."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(holder(path)) from None
    except OSError as error:
        if error.errno not in _NO_LOCKS:
            os.close(fd)
            raise
        # Some cluster file systems (Lustre mounted without flock) have no locks: run, unguarded, and say so.
        log.warning("%s: this file system has no locks (%s); running without one", path, error.strerror)
    except BaseException:
        os.close(fd)
        raise
    try:
        data = json.dumps(_me()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    except OSError as error:  # a full disk, say: name the file, which os.pwrite does not
        os.close(fd)
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        os.close(fd)
        raise
    return HeldLock(fd, path)


def _me() -> dict:
    array = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = "_".join(array) if all(array) else os.environ.get("SLURM_JOB_ID")
    what = f"Slurm job {job}" if job else " ".join(["ntkeval", *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now().isoformat(" ", "seconds"),
            "what": what if len(what) <= _WHAT_CHARS else what[:_WHAT_CHARS - 3] + "..."}


def holder(path: Path) -> str:
    """Who holds the lock at `path`, as the holder wrote it: 'pid 123 on host n1 since 2026-01-02 10:00:00: ntkeval
    -m ...' (or 'Slurm job 77_3' for a cell)."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:  # the holder writes its name right after locking; an empty file means it is about to
        try:
            info = json.loads(Path(path).read_text() or "null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not isinstance(info, dict):
        return "a process that has not said who it is"
    return f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}: {info.get('what')}"
