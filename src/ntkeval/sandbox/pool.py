"""run_programs: run untrusted programs (a model's program-of-thought answers) in sandbox workers, one confined
process each, and return each one's stdout and status. It never raises for what a program does."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ntkeval.sandbox import frames

STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "forbidden")
SRC_DIR = str(Path(__file__).resolve().parents[2])  # the directory that holds the ntkeval package
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from ntkeval.sandbox.zygote import main; main(sys.argv[2])"
ZYGOTE_MARK = "ntkeval.sandbox.zygote"  # in every worker's command line (and so its children's): findable in ps
START_S = 30.0   # a worker's interpreter start and imports; generous because the machine may be busy
GRACE_S = 10.0   # beyond a program's own timeout before the worker itself is presumed stuck


@dataclass(frozen=True)
class ProgramRun:
    """How one program ran: what it printed (at most output_bytes of it) and one of STATUSES, with a one-line
    detail (the exception, the limit it hit, the refused operation)."""
    stdout: str
    status: str
    detail: str = ""


class _Worker:
    """One warm zygote process and its two pipes."""

    def __init__(self, config: dict):
        import subprocess  # here, not at the top: the zygote imports this package and should not carry it
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, SRC_DIR, json.dumps(config)], env={}, cwd=config["base"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        hello = frames.read_frame(self.process.stdout.fileno(), time.monotonic() + START_S)
        if hello is None:
            self.close()
            raise OSError(f"the sandbox worker did not start (exit code {self.process.returncode})")
        self.walls = json.loads(hello)["walls"]

    def run(self, program: str, timeout_s: float) -> ProgramRun:
        frames.write_frame(self.process.stdin.fileno(), program.encode("utf-8", "surrogatepass"))
        reply = frames.read_frame(self.process.stdout.fileno(), time.monotonic() + timeout_s + GRACE_S)
        if reply is None:
            raise OSError("the sandbox worker stopped answering")
        return ProgramRun(**json.loads(reply))

    def close(self) -> None:
        """Closing its requests pipe ends the worker; a stuck one is killed with whatever it started."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=GRACE_S)
        except Exception:  # noqa: BLE001  (a broken pipe or a hang: either way, kill it)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.process.stdout.close()


def _check(programs, timeout_s, memory_mb, output_bytes, workers) -> None:
    """Bad arguments are the caller's bug: one line naming the value and what is valid."""
    if not isinstance(programs, (list, tuple)) or not all(isinstance(p, str) for p in programs):
        raise ValueError(f"programs must be a list of str, got {type(programs).__name__}")
    for name, value, low in (("timeout_s", timeout_s, 0.01), ("memory_mb", memory_mb, 32),
                             ("output_bytes", output_bytes, 1)):
        if not isinstance(value, (int, float)) or value < low:
            raise ValueError(f"run_programs: {name}={value!r} is invalid; it must be a number >= {low}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"run_programs: workers={workers!r} is invalid; it must be an int >= 1 or None")


def _serve(worker_slot: list, config: dict, jobs: queue.Queue, programs: list[str], runs: list) -> None:
    """One thread per worker: takes programs off the queue until it is empty; a worker that fails is replaced."""
    while True:
        try:
            index = jobs.get_nowait()
        except queue.Empty:
            return
        try:
            if worker_slot[0] is None:
                worker_slot[0] = _Worker(config)
            runs[index] = worker_slot[0].run(programs[index], config["timeout_s"])
        except Exception as failure:  # noqa: BLE001  (a broken worker costs this program, never the caller)
            runs[index] = ProgramRun("", "error", f"sandbox worker failed: {failure}")
            if worker_slot[0] is not None:
                worker_slot[0].close()
                worker_slot[0] = None


def run_programs(programs: list[str], timeout_s: float = 2.0, memory_mb: int = 256, output_bytes: int = 4096,
                 workers: int | None = None) -> list[ProgramRun]:
    """Runs each program in its own confined process (see the package docstring for the walls) and returns one
    ProgramRun per program, in order. Workers are started for this call and gone, with their files, when it returns."""
    _check(programs, timeout_s, memory_mb, output_bytes, workers)
    if not programs:
        return []
    count = min(workers or os.cpu_count() or 1, len(programs))
    base = tempfile.mkdtemp(prefix=f"ntkeval-sandbox-{os.getpid()}-")
    os.chmod(base, 0o711)  # programs running as nobody must reach their own directories inside it
    config = {"timeout_s": float(timeout_s), "memory_mb": int(memory_mb), "output_bytes": int(output_bytes),
              "base": base, "parent": os.getpid()}
    jobs: queue.Queue = queue.Queue()
    for index in range(len(programs)):
        jobs.put(index)
    runs: list[ProgramRun | None] = [None] * len(programs)
    slots = [[None] for _ in range(count)]
    threads = [threading.Thread(target=_serve, args=(slot, config, jobs, list(programs), runs), daemon=True)
               for slot in slots]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for slot in slots:
            if slot[0] is not None:
                slot[0].close()
        shutil.rmtree(base, ignore_errors=True)
    return [run if run is not None else ProgramRun("", "error", "not run") for run in runs]


def describe_walls() -> list[str]:
    """The walls a worker puts up on this system (for the benchmark and the self-test's message)."""
    base = tempfile.mkdtemp(prefix=f"ntkeval-sandbox-{os.getpid()}-")
    os.chmod(base, 0o711)
    try:
        worker = _Worker({"timeout_s": 1.0, "memory_mb": 256, "output_bytes": 64, "base": base,
                          "parent": os.getpid()})
        worker.close()
        return worker.walls
    finally:
        shutil.rmtree(base, ignore_errors=True)
