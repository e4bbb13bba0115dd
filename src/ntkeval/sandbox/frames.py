"""Length-prefixed messages over pipes, the one wire format between run_programs and its sandbox workers."""

from __future__ import annotations

import os
import select
import struct
import time

HEADER = struct.Struct(">I")  # 4-byte big-endian length, then that many bytes of payload


def write_frame(fd: int, payload: bytes) -> None:
    """Writes one message completely (os.write may write less than asked to a pipe)."""
    data = HEADER.pack(len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    """Reads size bytes, or None at end of file or when the deadline (time.monotonic) passes first."""
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
        chunk = os.read(fd, size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> bytes | None:
    """Reads one message, or None at end of file or past the deadline."""
    header = read_exactly(fd, HEADER.size, deadline)
    if header is None:
        return None
    return read_exactly(fd, HEADER.unpack(header)[0], deadline)
