"""What went wrong in a sweep dir: failed cells, jobs that started and died, and grid jobs that never started.

Used by `ntkeval-report`; the grid is the sweep's grid.yaml, every job the ntkeval sweeper launched once pair.train
selectors were expanded (hydra_plugins.ntkeval_sweeper); for a sweep without one, it is expanded from multirun.yaml
with Hydra's own override parser and BasicSweeper. Either way a job counts as missing exactly when Hydra launched (or
would have launched) it and no job dir holds it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

# Hydra's own parser and grid expansion, so `a=1,2`, `range(...)`, `choice(...)` and quoting mean what they meant
# to the sweep; the report only reads Hydra's files and never composes a config.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

GRID_FILE = "grid.yaml"  # written by hydra_plugins.ntkeval_sweeper (the same name there; a test keeps them equal)


@dataclass(frozen=True)
class Problem:
    kind: str      # "failed" | "incomplete" | "missing"
    where: str     # the job dir, or "grid job #k" for a job that has no dir
    message: str   # what happened: the error's first line and log path, the last log line, or the overrides
    key: tuple[str, ...] = ()  # the job's overrides (override_key): how the command matches what its launcher saw

    def line(self, reason: str | None = None) -> str:
        """One line; `reason` (what the launcher saw happen to the job) replaces what the files say."""
        return f"{self.kind:<10} {self.where}: {reason or self.message}"


def natural_key(path: Path) -> list:
    """Sort key that puts job dir 2 before job dir 10, as Hydra numbered them."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Dirs Hydra started a job in (they hold .hydra/overrides.yaml), at any depth, in job order."""
    return sorted((p.parent.parent for p in Path(sweep_dir).rglob(".hydra/overrides.yaml")), key=natural_key)


def job_overrides(job_dir: Path) -> list[str]:
    """The override strings Hydra recorded for one job."""
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"), resolve=False)
    except Exception:  # a job killed while Hydra wrote the file; it then matches no grid job, which is true
        return []
    return [str(o) for o in overrides or []]


def override_key(overrides: list[str]) -> tuple[str, ...]:
    """Identity of a job by its overrides: order-free, as Hydra may list sweeper params before command-line ones."""
    return tuple(sorted(set(overrides)))


def recorded_grid(sweep_dir: Path, notes: list[str]) -> list[list[str]] | None:
    """The jobs the ntkeval sweeper wrote to grid.yaml, in launch order; None when it wrote none (or a note when it
    cannot be read)."""
    path = Path(sweep_dir) / GRID_FILE
    if not path.is_file():
        return None
    try:
        jobs = OmegaConf.to_container(OmegaConf.load(path))
        return [[str(o) for o in job] for job in jobs]
    except Exception as err:  # a damaged file: fall back to the command line, whose selectors it may not expand
        notes.append(f"cannot read {path} ({type(err).__name__}: {err}); the grid is read from multirun.yaml")
        return None


def expand_grid(sweep_dir: Path, notes: list[str]) -> list[list[str]] | None:
    """Every job's overrides as the sweeper generated them; None (and a note) when that cannot be known."""
    recorded = recorded_grid(sweep_dir, notes)
    if recorded is not None:
        return recorded
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        notes.append(f"no multirun.yaml in {sweep_dir}: not a Hydra multirun dir, missing-cell check skipped")
        return None
    try:
        cfg = OmegaConf.load(path)
        target = OmegaConf.select(cfg, "hydra.sweeper._target_", default=None)
        if target is not None and not str(target).endswith(("BasicSweeper", "NtkevalSweeper")):
            notes.append(f"sweeper {target} does not run a fixed grid: missing-cell check skipped")
            return None
        task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
        params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
        task = OmegaConf.to_container(task, resolve=False) if task is not None else []
        params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
        # BasicSweeper puts the config's sweeper params first, then the command line, so a command-line
        # value for the same key replaces the configured one.
        arguments = [f"{key}={value}" for key, value in params.items()] + [str(t) for t in task]
        parsed = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except Exception as err:  # a grid we cannot expand must not stop the rest of the report
        notes.append(f"cannot expand the grid of {path} ({type(err).__name__}: {err}): missing-cell check skipped")
        return None
    return [job for batch in batches for job in batch]


def last_log_line(job_dir: Path) -> str | None:
    """The last non-empty line of the most recently written *.log file in a job dir (the job's own log, not the
    debug logs W&B keeps below it, whose links may point at a run a full disk made us delete), if any."""
    logs = sorted((p for p in Path(job_dir).glob("*.log") if p.is_file()), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    with open(logs[-1], "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 8192))  # the tail is enough; logs of long cells can be large
        lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return f"{logs[-1].name}: {lines[-1]}" if lines else f"{logs[-1].name} is empty"


def describe_cell(cell: dict) -> str:
    """A short name of a cell for problem lines: model learner dataset train_skill (seed)."""
    parts = [str(cell.get(k, "?")) for k in ("model", "learner", "dataset", "train_skill")]
    return " ".join(parts) + (f" seed {cell['seed']}" if "seed" in cell else "")


def _failed(results: list[dict]) -> list[Problem]:
    problems = []
    for result in results:
        if result.get("status") == "done":
            continue
        error = result.get("error") or f"status {result.get('status')!r} and no error recorded"
        message = f"{describe_cell(result.get('cell') or {})}: {error}; log: {result.get('log') or 'none recorded'}"
        job = Path(result["result_path"]).parent
        problems.append(Problem("failed", str(job), message, override_key(job_overrides(job))))
    return problems


def _incomplete(jobs: list[Path], results: list[dict]) -> list[Problem]:
    result_dirs = [Path(r["result_path"]).parent for r in results]
    problems = []
    for job in jobs:
        if any(job == d or job in d.parents for d in result_dirs):
            continue
        what = "result.json is unreadable" if (job / "result.json").exists() else "started but wrote no result.json"
        last = last_log_line(job)
        message = f"{what} ({' '.join(job_overrides(job))}); " + (f"last log line: {last}" if last else "no *.log file")
        problems.append(Problem("incomplete", str(job), message, override_key(job_overrides(job))))
    return problems


def find_problems(sweep_dir: Path | str, results: list[dict], notes: list[str] | None = None) -> list[Problem]:
    """Failed, incomplete and missing cells of a sweep; `notes` collects why a check was skipped (else printed)."""
    sweep_dir = Path(sweep_dir)
    own_notes: list[str] = [] if notes is None else notes
    jobs = job_dirs(sweep_dir)
    problems = _failed(results) + _incomplete(jobs, results)
    grid = expand_grid(sweep_dir, own_notes)
    if grid is not None:
        started = {override_key(job_overrides(job)) for job in jobs}
        problems += [Problem("missing", f"grid job #{num}", f"no job dir has the overrides {' '.join(overrides)}",
                             override_key(overrides))
                     for num, overrides in enumerate(grid) if override_key(overrides) not in started]
    if notes is None:
        for note in own_notes:
            print(f"note: {note}")
    return problems


def relaunch_command(sweep_dir: Path | str, extra: list[str] | tuple[str, ...] = ()) -> str | None:
    """The command that reruns a sweep in place: finished cells are skipped and cached stages reused, so only
    failed, incomplete and missing cells do work. It keeps the sweep's Hydra overrides too (hydra/launcher=slurm and
    its settings: a Slurm sweep reruns on Slurm). `extra` overrides replace the recorded ones of the same key (a
    lower scorer.batch_size after running out of memory). None when the sweep's command line is not on record."""
    path = Path(sweep_dir) / "multirun.yaml"
    try:
        overrides = OmegaConf.select(OmegaConf.load(path), "hydra.overrides", default=None)
    except Exception:  # no or unreadable multirun.yaml: nothing to rebuild the command from
        return None
    if overrides is None or overrides.get("task") is None:
        return None
    recorded = [str(o) for key in ("task", "hydra") for o in OmegaConf.to_container(overrides.get(key) or [])]
    # hydra.mode is what -m says; the sweep dir goes last, as the one part that must not change
    replaced = {o.split("=", 1)[0] for o in extra} | {"hydra.sweep.dir", "hydra.mode"}
    args = [a for a in recorded if a.split("=", 1)[0] not in replaced] + list(extra)
    return " ".join(["ntkeval", "-m", *(shlex.quote(a) for a in args), shlex.quote(f"hydra.sweep.dir={sweep_dir}")])
