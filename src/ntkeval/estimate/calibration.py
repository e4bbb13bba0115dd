"""calibrate=true (with dry_run=true): run one cell per model of the grid in this process, on a throwaway stage cache,
time its model load (apart, before the cell) and each stage kind it computes (StageCache.compute_s: own seconds,
nested entries excluded), and extrapolate to the device-hours of the grid's de-duplicated remaining work
(ntkeval.plan.GridPlan.runs)."""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ntkeval.backends import session_pool
from ntkeval.backends.session_pool import shared_session
from ntkeval.cache import StageCache
from ntkeval.cell import run_cell
from ntkeval.plan import GridPlan, model_id
from ntkeval.tracking.base import NullTracker


@dataclass
class Timing:
    """What one calibration cell measured."""
    name: str                 # the model's name
    cell: str                 # which cell was timed
    device: str
    wall_s: float
    load_s: float | None      # None: its load could not be timed apart from the stages (_load)
    seconds: dict[str, float] = field(default_factory=dict)  # stage kind -> own seconds computing its entries
    entries: dict[str, int] = field(default_factory=dict)    # stage kind -> entries computed

    def per_entry(self, kind: str) -> float | None:
        return self.seconds[kind] / self.entries[kind] if self.entries.get(kind) else None


def pick_cells(cells: list) -> dict[str, object]:
    """One cell per model (model_id): the first that trains or builds an adaptation (so the costliest stage kind is
    timed), among those the one with the most scoring stages; else the first cell of the model."""
    def rank(cell) -> tuple[int, int]:
        context = cell.context()
        builds = any(learner.stage(context) is not None for learner in (cell.learner, cell.learner.control())
                     if learner is not None)
        return int(builds), len(cell.scorer.stages(cell.roles()))

    chosen: dict[str, object] = {}
    for cell in cells:
        model = model_id(cell)
        if model not in chosen or rank(cell) > rank(chosen[model]):
            chosen[model] = cell
    return chosen


def time_cell(cell) -> Timing:
    """Run `cell` here, on its own device, with a stage cache in a temporary directory (nothing is read from or
    written to the user's stage cache; model checkpoints still come from cache_dir/models). The model is loaded
    first, through the session pool, and timed on its own: run_cell then takes up that session, so the stages'
    seconds hold no load (a session loads lazily, inside whichever stage first needs the model)."""
    with tempfile.TemporaryDirectory(prefix="ntkeval-calibrate-") as folder:
        timed = copy.copy(cell)  # the same objects, another cache and output dir
        timed.cache = StageCache(Path(folder) / "stages")
        timed.out_dir = Path(folder) / "cell"
        session_pool.release()  # a model kept from earlier would make the load free
        start = time.monotonic()
        try:
            load_s = _load(cell)
            run_cell(timed, NullTracker())
        finally:
            session_pool.release()  # the timed model goes; the grid's own runs load theirs
        wall = time.monotonic() - start
    return Timing(name=cell.model.name, cell=f"{cell.learner.name} on {cell.train_skill}, "
                  f"{len(cell.test_skills)} test skill{'s' if len(cell.test_skills) != 1 else ''}",
                  device=str(cell.device), wall_s=wall, load_s=load_s,
                  seconds=dict(timed.cache.compute_s), entries=dict(timed.cache.misses))


def _load(cell) -> float | None:
    """Seconds to load the cell's model into a session the pool keeps for run_cell; None when its session cannot be
    kept (no reset(): then run_cell loads it again, inside a stage) or loads in no separate step (no `model`)."""
    start = time.monotonic()
    with shared_session(cell.model, cell.device) as session:
        if not callable(getattr(session, "reset", None)) or not hasattr(type(session), "model"):
            return None
        session.model  # noqa: B018  (the property loads it)
    return time.monotonic() - start


def model_loads(cells: list, groups: list[list[int]], in_process: bool) -> dict[str, int]:
    """Model loads per model_id: one per job (a packed job loads once); in-process, cells run in turn and keep the
    last model (ntkeval.backends.session_pool), so one per change of model. An upper bound: a job whose stages are
    all cached loads nothing."""
    loads: dict[str, int] = {}
    sequence = [[i] for group in groups for i in group] if in_process else groups
    previous = None
    for job in sequence:
        model = model_id(cells[job[0]])
        if not in_process or model != previous:
            loads[model] = loads.get(model, 0) + 1
        previous = model
    return loads


def estimate_lines(plan: GridPlan, timings: dict[str, Timing], loads: dict[str, int]) -> list[str]:
    """The extrapolation: per model, entries to compute x measured seconds per entry for each stage kind, plus
    model loads x load time; the kinds nobody measured are listed, not guessed."""
    devices = sorted({t.device for t in timings.values()})
    lines, total, missing = [], 0.0, []
    for model, name in plan.models.items():
        timing, parts = timings.get(model), []
        for kind, count in plan.kinds(model).items():
            per = timing.per_entry(kind) if timing is not None else None
            if per is None:
                missing.append(f"{name} {kind} ({count} to compute)")
                continue
            total += count * per
            parts.append(f"{kind} {count} x {_seconds(per)} = {_seconds(count * per)}")
        if timing is not None and timing.load_s is not None:
            total += loads.get(model, 0) * timing.load_s
            parts.append(f"model loads {loads.get(model, 0)} x {_seconds(timing.load_s)} = "
                         f"{_seconds(loads.get(model, 0) * timing.load_s)}")
        elif loads.get(model):
            missing.append(f"{name} model loads ({loads[model]})")
        lines.append(f"  {name}: {'; '.join(parts) if parts else 'nothing measured'}")
    unit = "GPU-hours" if all(d.startswith("cuda") for d in devices) else f"device-hours of this machine's " \
                                                                          f"{', '.join(devices)}"
    head = f"estimated time of the remaining work: ~{total / 3600:.3g} {unit} ({_seconds(total)}), from timings " \
           f"taken on this machine's {', '.join(devices)}; another device runs at another speed"
    lines = [head, *lines]
    lines.append(f"  not measured (left out of the estimate): {', '.join(missing)}" if missing else
                 "  every stage kind of the plan was measured")
    return lines


def timing_lines(timings: dict[str, Timing], plan: GridPlan) -> list[str]:
    """What was timed: per model, the cell, its load and its seconds per entry of each kind."""
    lines = [("calibration: one cell per model run in this process on this machine's device, on a throwaway stage "
              "cache (model checkpoints from cache_dir):")]
    for timing in timings.values():
        load = f"model load {_seconds(timing.load_s)}; " if timing.load_s is not None else "model load not timed; "
        kinds = "; ".join(f"{kind} {n} x {_seconds(timing.seconds.get(kind, 0.0) / n)}"
                          for kind, n in sorted(timing.entries.items()) if n)
        unplanned = sorted(k for k in timing.entries if k not in plan.kinds_seen)
        extra = f" (not counted by the plan: {', '.join(unplanned)})" if unplanned else ""
        lines.append(f"  {timing.name} on {timing.device} ({timing.cell}, {_seconds(timing.wall_s)} in all): "
                     f"{load}{kinds}{extra}")
    return lines


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
