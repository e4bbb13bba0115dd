"""What went wrong, in one line: a full disk, an unwritable dir, device memory, a job Slurm ended, the controller
out of reach. A cell's exception becomes a `Fault` that names the place and what to change, so the command prints
lines instead of tracebacks (the cell's own log keeps the traceback), and says whether rerunning can help.

Used by app.py (cells and the command), callbacks.py (the sweep's lock) and the submitit launchers
(hydra_plugins/ntkeval_launcher); it imports neither Hydra nor torch.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Fault:
    line: str                                # what the user reads
    fatal: bool = False                      # every later cell would meet it too: schedule no more cells
    rerun: tuple[str, ...] | None = ()       # overrides a rerun needs to get past it; None: rerunning cannot help
    known: bool = True                       # False: an unexpected error, told by its type and first line


class CellFailed(Exception):
    """Raised by a cell in a launcher's job process: the job hands it (pickled) back to the command."""

    def __init__(self, fault: Fault):
        super().__init__(fault)
        self.fault = fault

    def __str__(self) -> str:
        return self.fault.line


class Stop(BaseException):
    """Ends the command with the fault's line, and with the sweep's summary when `summarise`.

    A BaseException because it has to pass Hydra on its way to `app.main`: Hydra turns an Exception raised in a
    callback into a warning, and keeps one raised by a job to re-raise as a traceback after the remaining jobs ran.
    """

    def __init__(self, fault: Fault, summarise: bool = True):
        super().__init__(fault.line)
        self.fault = fault
        self.summarise = summarise


# Job faults this process saw, by the job's overrides, for the summary at the end.
RECORDED: dict[tuple[str, ...], Fault] = {}


def record(overrides: list[str] | tuple[str, ...], fault: Fault) -> None:
    RECORDED[tuple(sorted(set(overrides)))] = fault  # the key of sweep_grid.override_key (which imports Hydra)


# ---------------------------------------------------------------------------------------------------------------
# Exceptions -> faults

# The innermost ntkeval module on the stack of an out-of-memory error says which stage ran out, and so which setting
# bounds its memory, and what lowering it does: "shrinks", a batch size that oom.ShrinkingBatches already halves on its
# own down to 1 (so the error means a batch of one does not fit); "changes results", a rerun is a new sweep.
_MEMORY_STAGES = (  # (module prefix, stage, setting, lowering)
    ("ntkeval.backends.huggingface.training", "tuning", "tuning.batch_size", "changes results"),
    ("ntkeval.backends.huggingface.sampling", "sampling completions", "scorer.n", "changes results"),
    ("ntkeval.backends.huggingface.teacher_forcing", "scoring", "scorer.batch_size", "shrinks"),
    ("ntkeval.backends.huggingface.gradients", "computing gradients", "scorer.batch_size", "shrinks"),
    ("ntkeval.backends.huggingface.session", "loading the model", None, None),
    ("ntkeval.backends.huggingface.loading", "loading the model", None, None),
)


def describe(error: BaseException, config: dict | None = None, out_dir: Path | None = None) -> Fault:
    """The fault an exception stands for. `config` (the cell's resolved config) supplies current setting values;
    `out_dir` is where the job writes, for naming the disk that filled."""
    for link in _chain(error):
        if isinstance(link, (CellFailed, Stop)):
            return link.fault
        if any(cls.__name__ == "OutOfMemoryError" for cls in type(link).__mro__):  # torch's, without importing torch
            return out_of_memory(link, config or {})
    for link in _chain(error):
        if isinstance(link, OSError) and refused_write(link.errno, link.filename or out_dir, out_dir):
            return disk_fault(link.errno, link.filename or out_dir)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Fault(f"{type(error).__name__}: {first}", known=False)


def _chain(error: BaseException):
    """The error and its causes/contexts, outermost first (a logging config error wraps the OSError beneath it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # a refused write wherever it happens
_DENIED = {errno.EACCES, errno.EPERM}              # a refused write only under the job's own dir (else maybe a read)


def refused_write(number: int | None, path, out_dir: Path | None) -> bool:
    """Whether an OS error is the file system refusing the job's output, which every later cell would meet too."""
    if number in _FULL:
        return True
    if number not in _DENIED or path is None or out_dir is None:
        return False
    path, out_dir = Path(path).absolute(), Path(out_dir).absolute()
    return path == out_dir or out_dir in path.parents


def disk_fault(number: int, path: str | os.PathLike | None) -> Fault:
    """A write the file system refused. Fatal: the next cell writes to the same place."""
    where = Path(path) if path else None
    if number in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on" if number == errno.ENOSPC else "disk quota exceeded on"
        if where is None:
            return Fault(f"{what} the output file system", fatal=True)
        mount = mount_point(where)
        detail = f" (writing {where})" if where != mount else ""
        return Fault(f"{what} {mount}{detail}", fatal=True)
    return Fault(f"cannot write to {where or 'the output directory'}: {os.strerror(number)}", fatal=True)


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (or the nearest existing folder above it)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def out_of_memory(error: BaseException, config: dict) -> Fault:
    """Device memory ran out: the stage (from the stack) and the setting to lower, with its current value."""
    modules = [frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(error.__traceback__)]
    stage, setting, lowering = None, None, None
    for module in reversed(modules):  # innermost first
        found = next((s for s in _MEMORY_STAGES if module.startswith(s[0])), None)
        if found is not None:
            _, stage, setting, lowering = found
            break
    words = str(_device_error(error)).strip()
    message = re.split(r"(?<=\.) (?=GPU|Of the|Including|Process)", words.splitlines()[0] if words else "")[0]
    line = "out of device memory" + (f" while {stage}" if stage else "") + f" ({message})"
    value = _select(config, setting) if setting else None
    if setting is None:
        return Fault(f"{line}: the model does not fit; use a device with more memory" if stage else line, rerun=None)
    if lowering == "shrinks":
        now = f"now {value}, " if value is not None else ""
        return Fault(f"{line}: even a batch of one does not fit, so lowering {setting} ({now}halved on its own at "
                     f"each out-of-memory) cannot help; use a device with more memory{_smaller_dtype(config)}",
                     rerun=None)
    if not isinstance(value, int) or value <= 1:
        return Fault(f"{line}: {setting} is {value}; use a device with more memory", rerun=None)
    lower = max(1, value // 2)
    return Fault(f"{line}: lower {setting} (now {value}), e.g. {setting}={lower}; that changes the results, so run "
                 f"it as a new sweep", rerun=None)


def _device_error(error: BaseException) -> BaseException:
    """The device's own out-of-memory error beneath the one a batch of one raised after the retries
    (oom.ShrinkingBatches raises from it): its words say how much was asked for."""
    while error.__cause__ is not None and "out of memory" in str(error.__cause__).lower():
        error = error.__cause__
    return error


def _smaller_dtype(config: dict) -> str:
    """The half-precision alternative to a full-precision model, as advice (it changes the results)."""
    dtype = _select(config, "model.dtype")
    if dtype not in ("float32", "float64"):
        return ""
    return f", or model.dtype=bfloat16 (now {dtype}; that changes the results, so run it as a new sweep)"


def _select(config: dict, dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def ended_by_scheduler(state: str, cluster: str = "Slurm") -> Fault:
    """A job the scheduler ended before it handed back a result (sacct's state, e.g. 'CANCELLED by 0')."""
    name = state.split()[0] if state.strip() else "UNKNOWN"
    if name == "CANCELLED":
        return Fault(f"cancelled by {cluster}: state {name}")
    if name == "TIMEOUT":  # a rerun continues from the cell's last completed stage or tuning checkpoint
        return Fault(f"stopped by {cluster} at its time limit: state {name}; a rerun resumes it, or raise "
                     f"hydra.launcher.timeout_min")
    if name == "OUT_OF_MEMORY":
        return Fault(f"out of host memory: state {name}; raise hydra.launcher.mem_gb", rerun=None)
    return Fault(f"ended by {cluster}: state {name}")


_ERRNO_LINE = re.compile(r"\[Errno (\d+)\] [^:'\n]*(?:: '([^'\n]+)')?")


def from_traceback_text(text: str, out_dir: Path | None = None) -> Fault:
    """The fault in a job's traceback that came back as text only (submitit's error for a job that failed outside
    the cell, e.g. while Hydra wrote the job's files): the last refused write in it, else its last line."""
    numbers = [(int(m.group(1)), m.group(2)) for m in _ERRNO_LINE.finditer(text)]
    disk = [(n, path) for n, path in numbers if refused_write(n, path or out_dir, out_dir)]
    if disk:
        return disk_fault(*disk[-1])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    tail = [ln for ln in lines if not ln.startswith("You can check full logs")]
    return Fault(f"the job failed outside the cell: {tail[-1] if tail else 'no error text'}", known=False)


# ---------------------------------------------------------------------------------------------------------------
# Log files on a full disk


class LogWriteErrors:
    """A log line the disk refuses is remembered, not printed: the cell's failure then names the disk once.

    Installed on logging.FileHandler itself, for this process: besides the job's log (Hydra's handler) wandb keeps
    debug logs beside its runs and logs to them from its own threads, during and after the cell; on a full disk each
    of their lines would otherwise print a 'Logging error' traceback to the console. Other handler errors (a bad
    format string, say) keep logging's usual report.
    """

    current: LogWriteErrors | None = None  # the running cell's

    def __init__(self) -> None:
        self.first: OSError | None = None
        self.path: str | None = None

    @classmethod
    def install(cls) -> LogWriteErrors:
        """Start recording for a new cell (and install the handler policy on first use)."""
        logging.FileHandler.handleError = _handle_log_error  # type: ignore[method-assign]
        cls.current = cls()
        return cls.current

    def fault(self) -> Fault | None:
        if self.first is None:
            return None
        return disk_fault(self.first.errno or errno.EIO, self.first.filename or self.path)


def _handle_log_error(handler: logging.FileHandler, record: logging.LogRecord) -> None:
    error = sys.exc_info()[1]
    if not isinstance(error, OSError):
        logging.Handler.handleError(handler, record)
        return
    errors = LogWriteErrors.current
    if errors is not None and errors.first is None:
        errors.first, errors.path = error, handler.baseFilename


def log_traceback_to_files(error: BaseException) -> None:
    """Put the error's traceback in the job's log file(s) only: the console gets the one line."""
    record = logging.LogRecord("ntkeval", logging.ERROR, __file__, 0, "traceback of the cell's failure:", None,
                               (type(error), error, error.__traceback__))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
