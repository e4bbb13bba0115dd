"""sandbox_problem: whether program-of-thought answers can be run safely here, in one line, for the preflight."""

from __future__ import annotations

import functools
import sys

from ntkeval.sandbox.pool import run_programs


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """None when the sandbox works on this system, else one line saying why (format=pot is refused with it).
    It runs two tiny programs once per process: an honest one must print, a socket must be refused."""
    if not sys.platform.startswith("linux"):
        return f"the program sandbox needs Linux (fork, rlimits, namespaces); this system is {sys.platform}"
    if not hasattr(sys, "addaudithook"):
        return f"the program sandbox needs Python >= 3.8 (audit hooks); this is {sys.version.split()[0]}"
    try:
        honest, hostile = run_programs(["print(6 * 7)", "import socket"], timeout_s=10.0, workers=1)
    except Exception as failure:  # noqa: BLE001  (any failure here is the one-line answer)
        return f"the program sandbox failed its self-test: {type(failure).__name__}: {failure}"
    if (honest.status, honest.stdout) != ("ok", "42\n"):
        return f"the program sandbox failed its self-test: print(6 * 7) gave {honest.status} ({honest.detail})"
    if hostile.status != "forbidden":
        return f"the program sandbox failed its self-test: import socket gave {hostile.status}, not forbidden"
    return None
