"""The audit hook installed in each sandboxed child before its program runs: it refuses processes, sockets, ctypes,
signals to others, raised limits, writes outside the program's temporary directory and reads outside the Python
installation, by ending the child at once with status "forbidden" (so a program cannot catch and ignore it).
"""

from __future__ import annotations

import os
import sys

REFUSED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
    "os.setxattr", "os.removexattr", "os.chflags",
})
REFUSED_PREFIXES = ("socket.", "ctypes.", "_posixsubprocess.")
REFUSED_MODULES = frozenset({  # importing them is refused: each exists only to reach around the walls
    "ctypes", "_ctypes", "socket", "_socket", "ssl", "_ssl", "_posixsubprocess", "_multiprocessing",
    "_xxsubinterpreters", "_testcapi", "_testinternalcapi", "_testmultiphase", "_testbuffer", "asyncio",
    "urllib.request", "http.client", "ftplib", "smtplib", "telnetlib",
})
# events whose path arguments must lie inside the temporary directory, and the positions of those arguments
WRITE_PATHS = {
    "os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
    "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,), "os.truncate": (0,),
    "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,),
}
DIR_FD = {"os.mkdir": 2, "os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
          "os.chmod": 2, "os.chown": 3, "os.utime": 3}  # where a dir_fd argument sits (it would dodge the path check)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
READABLE_DEVICES = ("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _resolved(path) -> str | None:
    """The real absolute path an argument names (None for a file descriptor, which was itself opened through here)."""
    if isinstance(path, int):
        return None
    return os.path.realpath(os.fsdecode(os.fspath(path)))


def readable_roots(workdir: str) -> tuple[str, ...]:
    """Where a program may read: its own directory and the Python installation it imports from (no /proc, no home,
    so neither another process's environment nor a user's files)."""
    roots = {workdir, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(entry for entry in sys.path if entry and os.path.isdir(entry))
    return tuple(sorted(os.path.realpath(root) for root in roots)) + READABLE_DEVICES


def make_hook(workdir: str, refuse):
    """The hook for one child. refuse(reason) must end the process (os._exit); the hook never returns after it."""
    workdir = os.path.realpath(workdir)
    readable = readable_roots(workdir)

    def check_write(event: str, path) -> None:
        resolved = _resolved(path)
        if resolved is not None and not _inside(resolved, workdir):
            refuse(f"{event} outside the temporary directory: {resolved}")

    def check_read(event: str, path) -> None:
        resolved = _resolved(path)
        if resolved is not None and not any(_inside(resolved, root) for root in readable):
            refuse(f"{event} of {resolved}")

    def hook(event: str, args: tuple) -> None:
        if event in REFUSED_EVENTS or event.startswith(REFUSED_PREFIXES):
            refuse(event)
        elif event == "import":
            name = args[0]
            if name in REFUSED_MODULES or name.partition(".")[0] in REFUSED_MODULES:
                refuse(f"import {name}")
        elif event == "open":
            path, mode, flags = args
            if mode is None:  # os.open: it takes a dir_fd the event does not show, so it may only read
                if flags & WRITE_FLAGS:
                    refuse("os.open for writing (use open())")
                check_read("open", path)
            elif any(letter in mode for letter in "wax+"):
                check_write("open", path)
            else:
                check_read("open", path)
        elif event in WRITE_PATHS:
            dir_fd = DIR_FD.get(event)
            if dir_fd is not None and len(args) > dir_fd and args[dir_fd] not in (None, -1):
                refuse(f"{event} with dir_fd")
            for index in WRITE_PATHS[event]:
                check_write(event, args[index])
        elif event in ("os.listdir", "os.scandir"):
            check_read(event, args[0] if args[0] is not None else ".")

    return hook
