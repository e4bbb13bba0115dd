"""The operating-system walls around sandboxed programs: a private network namespace for each worker, and for each
program its own session, an unprivileged identity, resource limits, a parent-death signal and a seccomp filter.

They back up the audit hook (guard.py), which Python's own documentation says is not a security boundary by itself.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import stat
import sys
from dataclasses import dataclass, field

from ntkeval.sandbox import seccomp

CLONE_NEWUSER = 0x10000000  # linux/sched.h
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1        # linux/prctl.h
CAPABILITY_VERSION_3 = 0x20080522  # linux/capability.h
NOBODY = 65534              # the conventional unprivileged uid/gid; root's programs run as it where they can
FILE_BYTES = 16 * 2**20     # scratch files a program may write in its temporary directory (RLIMIT_FSIZE)
OPEN_FILES = 64             # a program needs a handful of descriptors; many more means something else is going on


@dataclass(frozen=True)
class Limits:
    """What one program may use; every field is set by run_programs."""
    timeout_s: float    # wall clock, enforced by the worker; CPU time is limited to the next whole second above
    memory_mb: int      # address space (RLIMIT_AS), so a 10 GB allocation is a MemoryError, not the OOM killer
    output_bytes: int   # stdout beyond this kills the program (status output_limit)


@dataclass
class Plan:
    """The walls this worker can put up, decided once at its start."""
    libc: object = None            # ctypes libc, None where it cannot load
    fprog: object = None           # the seccomp filter, None where this machine has none
    as_nobody: bool = False        # root whose Python nobody can read keeps uid 0 but loses every capability
    names: list = field(default_factory=list)


def _load_libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _isolate_network(libc) -> str | None:
    """Moves this worker, and so every program it forks, into a new network namespace (only a loopback, down), so
    even a socket that slipped past the other walls reaches nothing. Returns the wall's name, or None where refused."""
    if libc is None:
        return None
    if os.geteuid() == 0:
        return "network namespace" if libc.unshare(CLONE_NEWNET) == 0 else None
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:  # without root: a user namespace of our own first
        return None
    try:  # keep our own uid/gid inside it, so files and permissions look as they did
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    except OSError:
        pass
    return "network namespace (in a user namespace)"


def _nobody_can_read_python() -> bool:
    """Whether every directory from / to the standard library and site-packages lets others in (a pyenv under
    /root does not, and a program that cannot import is no use)."""
    folders = {os.path.dirname(os.__file__)} | {p for p in sys.path if p and os.path.isdir(p)}
    for folder in folders:
        path = os.path.realpath(folder)
        while True:
            mode = os.stat(path).st_mode
            if not (mode & stat.S_IXOTH and mode & stat.S_IROTH):
                return False
            if path == os.path.dirname(path):
                break
            path = os.path.dirname(path)
    return True


def plan() -> Plan:
    """Enters the network namespace (for the whole worker) and decides the per-program walls."""
    libc = _load_libc()
    walls = Plan(libc=libc, fprog=seccomp.build_filter() if libc is not None else None)
    network = _isolate_network(libc)
    walls.names = ["audit hook", "rlimits (cpu, address space, nproc=0, fsize, nofile)", "own session",
                   "clean environment", "temporary directory"] + ([network] if network else [])
    if os.geteuid() == 0:
        walls.as_nobody = _nobody_can_read_python()
        walls.names.append("uid nobody" if walls.as_nobody else "uid 0 without capabilities (nobody cannot read "
                           "this Python)")
    if walls.fprog is not None:
        walls.names.append("seccomp (no fork, exec, socket, kill, ptrace, namespaces)")
    if libc is not None:
        walls.names.append("parent-death signal")
    return walls


def _drop_capabilities(libc) -> None:
    """uid 0 with no capabilities: no reading or writing past file permissions, no raising limits, no setuid."""
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc is None or libc.capset(header, data) != 0:
        raise OSError("capset failed: cannot drop root's capabilities")


def confine(limits: Limits, workdir: str, walls: Plan, parent_pid: int) -> None:
    """In the forked child, before any program code: its own session, its temporary directory as cwd, an
    unprivileged identity, the resource limits and the seccomp filter. Raises where a wall cannot go up."""
    os.setsid()  # its own process group, so the worker can kill it and anything it made in one call
    os.chdir(workdir)  # before dropping root: nobody may not be able to traverse the directories above it
    if os.geteuid() == 0 and walls.as_nobody:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    elif os.geteuid() == 0:
        _drop_capabilities(walls.libc)
    if walls.libc is not None:  # after setuid, which clears it: die with the worker, never outlive it
        walls.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the worker died before the death signal was armed
        os._exit(1)
    cpu_s = max(1, math.ceil(limits.timeout_s))
    memory = limits.memory_mb * 2**20
    for which, soft, hard in (
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),  # SIGXCPU at soft; SIGKILL at hard if SIGXCPU is ignored
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_NPROC, 0, 0),  # no fork, no threads (uid 0 is exempt: there seccomp refuses them)
        (resource.RLIMIT_FSIZE, FILE_BYTES, FILE_BYTES),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, OPEN_FILES, OPEN_FILES),
    ):
        resource.setrlimit(which, (soft, hard))
    if walls.fprog is not None and not seccomp.install(walls.libc, walls.fprog):
        raise OSError("the seccomp filter could not be installed")
