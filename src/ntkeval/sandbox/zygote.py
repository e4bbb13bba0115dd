"""A warm sandbox worker: started once per run_programs call with a clean environment, it imports what programs
commonly need, enters its own network namespace, then forks one confined child per program (child.py) and replies
with each run's stdout and status. Forking a warm interpreter is what makes many programs per second possible.

Run by pool.py as: python -I -c BOOT <src dir> <config json>; requests and replies are frames.py messages.
"""

from __future__ import annotations

import gc
import json
import os
import select
import shutil
import signal
import time

from ntkeval.sandbox import child, frames, walls

PRELOADED = ("fractions", "decimal", "math", "cmath", "statistics", "itertools", "functools", "collections",
             "re", "random", "string", "operator", "heapq", "bisect", "datetime")  # what arithmetic programs import


def _preload() -> None:
    for name in PRELOADED:
        try:
            __import__(name)
        except ImportError:
            pass


def _workdir(base: str, plan: walls.Plan) -> str:
    """A fresh directory for one program, owned by the user the program runs as."""
    path = os.path.join(base, f"run-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(path, 0o700)
    if os.geteuid() == 0 and plan.as_nobody:
        os.chown(path, walls.NOBODY, walls.NOBODY)
    return path


def _remove(path: str) -> None:
    """Removes a program's directory even where the program took its own permissions away."""
    def grant_and_retry(function, target, _info):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            function(target)
        except OSError:
            pass
    shutil.rmtree(path, onerror=grant_and_retry)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _watch(pid: int, output_r: int, limits: walls.Limits) -> tuple[bytes, str | None, int, float]:
    """Collects the child's stdout until it ends; kills it past the wall clock or the output limit.
    Returns (stdout, why it was killed or None, wait status, CPU seconds used)."""
    deadline = time.monotonic() + limits.timeout_s
    pidfd = os.pidfd_open(pid)
    output, size, killed = [], 0, None
    try:
        open_fds = [output_r, pidfd]
        while pidfd in open_fds:
            left = deadline - time.monotonic()
            ready = select.select(open_fds, [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                killed = "timeout"
                break
            if output_r in ready:
                chunk = os.read(output_r, 65536)
                if not chunk:
                    open_fds.remove(output_r)
                output.append(chunk)
                size += len(chunk)
                if size > limits.output_bytes:
                    killed = "output_limit"
                    break
            if pidfd in ready and output_r not in ready:  # ended (read the pipe dry first: output may still wait)
                open_fds.remove(pidfd)
    finally:
        os.close(pidfd)
    if killed:
        _kill(pid)
    else:  # the child has exited; what it wrote before exiting is still in the pipe
        while size <= limits.output_bytes and (chunk := os.read(output_r, 65536)):
            output.append(chunk)
            size += len(chunk)
        if size > limits.output_bytes:
            killed = "output_limit"
    _, wait_status, usage = os.wait4(pid, 0)
    return b"".join(output), killed, wait_status, usage.ru_utime + usage.ru_stime


def _classify(report: str, killed: str | None, wait_status: int, cpu_s: float, limits: walls.Limits) -> tuple[str, str]:
    """The run's status and a one-line detail, from how the worker ended it or how it ended itself."""
    if killed == "timeout":
        return "timeout", f"wall clock over {limits.timeout_s:g} s"
    if killed == "output_limit":
        return "output_limit", f"more than {limits.output_bytes} bytes of output"
    if report:
        status, _, detail = report.partition("\t")
        return status, detail.strip()
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        if number == signal.SIGXCPU or (number == signal.SIGKILL and cpu_s >= max(1, limits.timeout_s) - 0.05):
            return "timeout", f"CPU time over {cpu_s:.1f} s"
        if number == signal.SIGKILL:  # not ours and not the CPU limit: the kernel's out-of-memory killer
            return "memory", "killed by SIGKILL (out of memory)"
        return "error", f"killed by {signal.Signals(number).name}"
    code = os.WEXITSTATUS(wait_status)
    return ("ok", "") if code == 0 else ("error", f"exit code {code}")


def run_one(program: str, base: str, limits: walls.Limits, plan: walls.Plan) -> dict:
    """Forks a confined child for one program and waits for it; the temporary directory goes with it."""
    workdir = _workdir(base, plan)
    output_r, output_w = os.pipe()
    status_r, status_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(output_r)
            os.close(status_r)
            child.run_child(program, workdir, output_w, status_w, limits, plan, os.getppid())
        os.close(output_w)
        os.close(status_w)
        output, killed, wait_status, cpu_s = _watch(pid, output_r, limits)
        os.set_blocking(status_r, False)
        try:
            report = os.read(status_r, 4096).decode("utf-8", "replace")
        except BlockingIOError:
            report = ""
        status, detail = _classify(report, killed, wait_status, cpu_s, limits)
        stdout = output[: limits.output_bytes].decode("utf-8", "replace")
        return {"stdout": stdout, "status": status, "detail": detail}
    finally:
        for fd in (output_r, status_r):
            os.close(fd)
        _remove(workdir)


def main(config_json: str) -> None:
    """The worker loop: hello (the walls that stand), then one reply per program until the requests pipe closes."""
    config = json.loads(config_json)
    limits = walls.Limits(config["timeout_s"], config["memory_mb"], config["output_bytes"])
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # nothing printed by accident (ours or a child's) can land in the replies pipe
    os.dup2(devnull, 1)
    plan = walls.plan()
    _preload()
    gc.freeze()  # the warm heap is shared copy-on-write by every child; collecting it would copy it
    frames.write_frame(replies, json.dumps({"walls": plan.names}).encode())
    while (request := frames.read_frame(requests)) is not None:
        reply = run_one(request.decode("utf-8", "replace"), config["base"], limits, plan)
        frames.write_frame(replies, json.dumps(reply).encode())
