"""What runs in the forked child of a sandbox worker: put up the walls, hand the program a clean interpreter
(no environment, no inherited files, stdout a pipe to the worker), run it, and report its status on a second pipe.
"""

from __future__ import annotations

import builtins
import io
import os
import sys

from ntkeval.sandbox import guard, walls

# modules the worker imported for itself; dropping them makes a program's `import` go through the audit hook again
WORKER_ONLY_MODULES = ("ctypes", "_ctypes", "subprocess", "_posixsubprocess", "socket", "_socket", "selectors",
                       "ntkeval.sandbox.pool", "ntkeval.sandbox.selftest", "ntkeval.sandbox.seccomp")
MEMORY_LINE = b"memory\tMemoryError\n"  # built before the program runs: after a MemoryError nothing may allocate
STATUS_FD = 3                            # the report pipe, moved here so every higher descriptor can be closed


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _report(status: str, detail: str) -> None:
    os.write(STATUS_FD, f"{status}\t{_one_line(detail)}\n".encode("utf-8", "replace"))


def _refuse(reason: str) -> None:
    """Called by the audit hook: flush what was printed, report, and end the process before the program resumes."""
    try:
        sys.__stdout__.flush()
    except BaseException:  # noqa: BLE001, S110  (a broken stdout must not stop the refusal)
        pass
    _report("forbidden", reason)
    os._exit(0)


def _wire_files(output_fd: int, status_fd: int) -> io.TextIOWrapper:
    """stdin from /dev/null, stdout to the worker's pipe, stderr discarded, fd 3 the report pipe, nothing else."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(devnull, 2)
    os.dup2(status_fd, STATUS_FD)
    os.closerange(STATUS_FD + 1, max(os.sysconf("SC_OPEN_MAX"), 1024))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stdout = sys.__stdout__ = stdout
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8")
    return stdout  # kept by the caller: a program may rebind sys.stdout, but what it printed here must be flushed


def _clean_interpreter(workdir: str) -> None:
    """No inherited environment (secrets stay in the parent), temporary files in the program's own directory."""
    os.environ.clear()
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = workdir
    for name in WORKER_ONLY_MODULES:
        sys.modules.pop(name, None)
    for name in [name for name in sys.modules if name.startswith("ctypes.")]:
        sys.modules.pop(name)


def _run(program: str) -> tuple[str, str]:
    """Runs the program as __main__ and says how it ended: (status, detail)."""
    try:
        code = compile(program, "<program>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102  (confined: the point of it)
    except MemoryError:
        return "memory", "MemoryError"
    except SystemExit as stop:
        if stop.code in (None, 0):
            return "ok", ""
        return "error", f"SystemExit: {stop.code}"
    except BaseException as failure:  # noqa: BLE001  (any way a program fails is a status, never a crash)
        try:
            return "error", f"{type(failure).__name__}: {failure}"
        except BaseException:  # noqa: BLE001  (an exception whose str() fails still names its type)
            return "error", type(failure).__name__
    return "ok", ""


def run_child(program: str, workdir: str, output_fd: int, status_fd: int, limits: walls.Limits,
              plan: walls.Plan, parent_pid: int) -> None:
    """The child's whole life; it never returns (os._exit), so the worker's own code never runs twice."""
    try:
        stdout = _wire_files(output_fd, status_fd)
        walls.confine(limits, workdir, plan, parent_pid)
        _clean_interpreter(workdir)
        sys.addaudithook(guard.make_hook(workdir, _refuse))
    except BaseException as failure:  # noqa: BLE001  (a wall that cannot go up means the program must not run)
        try:
            _report("error", f"sandbox setup failed: {type(failure).__name__}: {failure}")
        finally:
            os._exit(1)
    status, detail = _run(program)
    try:
        stdout.flush()
    except MemoryError:
        os.write(STATUS_FD, MEMORY_LINE)
        os._exit(0)
    except BaseException as failure:  # noqa: BLE001
        status, detail = ("error", f"{type(failure).__name__}: {failure}") if status == "ok" else (status, detail)
    try:
        _report(status, detail)
    except MemoryError:
        os.write(STATUS_FD, MEMORY_LINE)
    os._exit(0)
