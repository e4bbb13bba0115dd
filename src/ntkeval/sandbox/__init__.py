"""A sandbox for untrusted programs (program-of-thought answers): run_programs runs each in its own forked process,
with CPU-time, address-space, output and wall-clock limits, no network, no processes, no writes outside a fresh
temporary directory and no inherited environment, and returns its stdout and a status from STATUSES.

Layers, inside out: an audit hook in the child refuses processes, sockets, ctypes and writes outside its directory
(guard.py); resource limits, an unprivileged uid when root, a network namespace and a parent-death signal stand
behind it (walls.py); a pool of warm workers forks one child per program (zygote.py, pool.py), so a program costs a
fork, not an interpreter start. sandbox_problem says in one line why this cannot work here, or None.
"""

from ntkeval.sandbox.pool import STATUSES, ProgramRun, run_programs
from ntkeval.sandbox.selftest import sandbox_problem

__all__ = ["STATUSES", "ProgramRun", "run_programs", "sandbox_problem"]
