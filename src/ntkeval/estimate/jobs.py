"""Each job's estimated peak GPU memory (a job: one cell, or with hydra.launcher.pack=row the cells of one packing
row, run in turn on one loaded model with each cell's adapters removed after it, so its peak is its largest cell's),
the dry run's lines about them, and the one-line refusal of a job that cannot fit the GPU it asks for.

A job is refused only when it cannot fit even with its scoring, gradient and sampling batches at the smallest size
they shrink to on out-of-memory (oom.ShrinkingBatches); the dry run prints its peak at the configured sizes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ntkeval.backends.huggingface.dtypes import loaded_dtype
from ntkeval.backends.huggingface.loading import NotAvailableOffline
from ntkeval.cache import stable_hash
from ntkeval.estimate.architecture import Architecture, architecture
from ntkeval.estimate.memory import (
    GIB,
    Breakdown,
    Pass,
    dtype_bytes,
    gib,
    lora_bytes,
    pass_activations,
    weight_bytes,
)
from ntkeval.estimate.workload import Lengths, cell_workload

SHOWN = 5  # jobs listed by the dry run; the rest are summed up in one line


@dataclass
class JobEstimate:
    number: int               # the job's index in launch order (Hydra's job number when each cell is a job)
    cells: list               # its Cells, in the order they run
    device: str               # where it runs: the dtype of its weights depends on it
    breakdown: Breakdown | None = None  # its peak at the configured batch sizes
    floor: Breakdown | None = None      # its peak with every pass that shrinks on out-of-memory at its smallest batch
    unknown: str | None = None  # why there is no estimate (the model's config cannot be had offline)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what its estimate leaves out (an unknown optimizer model)

    def label(self) -> str:
        first = self.cells[0]
        if len(self.cells) == 1:
            return f"job {self.number} ({first.model.name}, {first.learner.name}, {first.train_skill})"
        return f"job {self.number} ({first.model.name}, {first.train_skill}, {len(self.cells)} cells)"


@dataclass
class CellEstimate:
    peak: Breakdown           # at the configured batch sizes
    floor: Breakdown          # with the passes that shrink on out-of-memory at their smallest batch
    notes: list[str]
    missing: list[str]


class Estimator:
    """Cell estimates with each model's architecture and tokenizer read once per grid."""

    def __init__(self):
        self.models: dict[str, tuple[Architecture, Lengths] | str] = {}

    def model(self, loader) -> tuple[Architecture, Lengths] | str:
        """(architecture, token counter) of a model loader, or why there are none."""
        key = stable_hash([type(loader).__qualname__, loader.identity()])
        if key not in self.models:
            config = getattr(loader, "model_config", None)
            if not callable(config):
                self.models[key] = f"{type(loader).__name__} has no model_config() to read its architecture from"
                return self.models[key]
            try:
                arch = architecture(config())
            except NotAvailableOffline as why:
                self.models[key] = str(why)
                return self.models[key]
            try:
                tokenizer = loader.load_tokenizer()
            except (NotAvailableOffline, AttributeError):
                tokenizer = None  # lengths fall back to their byte bound
            self.models[key] = (arch, Lengths(tokenizer))
        return self.models[key]

    def cell(self, cell, device: str) -> CellEstimate | str:
        """The cell's peaks on `device`: weights, LoRA states and its largest pass (with a model loaded beside it
        for some passes, that model's weights too); or why it is unknown."""
        known = self.model(cell.model)
        if isinstance(known, str):
            return known
        arch, lengths = known
        work = cell_workload(cell, lengths)
        dtype = _dtype(cell.model, device)
        adapters = [arch.lora_parameters(config) for config in work.adapters]
        trained = max((n for n, _ in adapters), default=0) if work.trains else 0
        width = max((w for _, w in adapters), default=0)
        base = Breakdown(weights=weight_bytes(arch, dtype), lora=lora_bytes(sum(n for n, _ in adapters), trained),
                         activations=0, largest=None, gradients=weight_bytes(arch, dtype) if work.full_gradient else 0)
        runs = [_Run(run, arch, dtype_bytes(dtype), width) for run in work.passes]
        missing = []
        for loader, passes in work.beside:
            other = self.model(loader)
            if isinstance(other, str):
                missing.append(f"the optimizer model {loader.name} ({other})")
                continue
            other_dtype = _dtype(loader, device)
            runs += [_Run(run, other[0], dtype_bytes(other_dtype), 0, weight_bytes(other[0], other_dtype))
                     for run in passes(other[1])]
        peak = max((r.breakdown(base, r.run) for r in runs), key=lambda b: b.total, default=base)
        floor = max((r.breakdown(base, r.run.at_floor()) for r in runs), key=lambda b: b.total, default=base)
        return CellEstimate(peak, floor, work.notes, missing)


@dataclass(frozen=True)
class _Run:
    """A pass with the model that runs it: its shape, bytes per activation, LoRA width, and the bytes of its weights
    when it is a model loaded beside the cell's (0: the cell's own model)."""
    run: Pass
    shape: Architecture
    e: int
    lora_width: int
    beside: int = 0

    def breakdown(self, base: Breakdown, run: Pass) -> Breakdown:
        """The cell's memory while `run` (this pass at some batch) runs."""
        return replace(base, activations=pass_activations(self.shape, run, self.e, self.lora_width), largest=run,
                       optimizer=self.beside)


def _dtype(loader, device: str) -> str:
    return loaded_dtype(loader.identity().get("dtype", "float32"), device)


def estimate_jobs(cells: list, devices: list[str], groups: list[list[int]]) -> list[JobEstimate]:
    """One JobEstimate per group of cell indices (a job), its peak the largest of its cells'."""
    estimator, jobs = Estimator(), []
    for number, group in enumerate(groups):
        job = JobEstimate(number, [cells[i] for i in group], devices[group[0]])
        for i in group:
            found = estimator.cell(cells[i], devices[i])
            if isinstance(found, str):
                job.unknown, job.breakdown, job.floor = found, None, None
                break
            job.notes += [n for n in found.notes if n not in job.notes]
            job.missing += [m for m in found.missing if m not in job.missing]
            if job.breakdown is None or found.peak.total > job.breakdown.total:
                job.breakdown = found.peak
            if job.floor is None or found.floor.total > job.floor.total:
                job.floor = found.floor
        jobs.append(job)
    return jobs


def describe(job: JobEstimate) -> str:
    b = job.breakdown
    parts = ", ".join(f"{name} {gib(size)}" for name, size in b.parts().items())
    largest = f"; largest pass: {b.largest.describe()}" if b.largest is not None else ""
    smallest = f"; ~{gib(job.floor.total)} with the passes that shrink at their smallest batch" \
        if job.floor.total < b.total else ""
    missing = f"; not counted: {', '.join(job.missing)}" if job.missing else ""
    return f"{job.label()}: ~{gib(b.total)} on {job.device} ({parts}{largest}{smallest}{missing})"


def memory_lines(jobs: list[JobEstimate], limit: tuple[float, str] | None) -> list[str]:
    """The dry run's report: the largest jobs, a count of the rest, the unknown ones and the limit checked."""
    known = sorted((j for j in jobs if j.breakdown is not None), key=lambda j: -j.breakdown.total)
    lines = [(f"GPU memory per job (estimated peak at the configured batch sizes, weights in the dtype loaded on the "
              f"job's device; the CUDA context and allocator slack come on top): {len(jobs)} "
              f"job{'s' if len(jobs) != 1 else ''}")]
    lines += [f"  {describe(job)}" for job in known[:SHOWN]]
    if len(known) > SHOWN:
        lines.append(f"  ... {len(known) - SHOWN} more, each at most ~{gib(known[SHOWN].breakdown.total)}")
    unknown = [j for j in jobs if j.breakdown is None]
    for reason in dict.fromkeys(j.unknown for j in unknown):
        same = [j for j in unknown if j.unknown == reason]
        lines.append(f"  {len(same)} job{'s' if len(same) != 1 else ''} unknown (e.g. {same[0].label()}): {reason}")
    for note in dict.fromkeys(n for j in known for n in j.notes):
        lines.append(f"  note: {note}")
    if limit is None:
        lines.append("  no GPU limit to check (hydra.launcher.gpu_memory_gb=null, or no GPU where the cells run)")
    else:
        lines.append(f"  limit: {limit[1]}: {_verdict(known, limit[0], bool(unknown))}")
    return lines


def _verdict(known: list[JobEstimate], size: float, unknown: bool) -> str:
    """How many jobs do not fit even at their smallest batches, or that all fit (and how many only once shrunk)."""
    if not known:
        return "no job's size is known"
    over = sum(j.floor.total > size * GIB for j in known)
    if over:
        return (f"{over} job{'s do' if over != 1 else ' does'} not fit even with the passes that shrink at their "
                "smallest batch")
    shrunk = sum(j.breakdown.total > size * GIB for j in known)
    return (f"every estimated job fits{' (the unknown ones are not checked)' if unknown else ''}"
            + (f"; {shrunk} only once their batches shrink on out-of-memory" if shrunk else ""))


def refusal(jobs: list[JobEstimate], limit: tuple[float, str]) -> str | None:
    """One line naming the largest job that exceeds the limit even with the passes that shrink on out-of-memory at
    their smallest batch (and how many more do), or None when all fit; jobs of unknown size are never refused."""
    size, name = limit
    over = sorted((j for j in jobs if j.floor is not None and j.floor.total > size * GIB),
                  key=lambda j: -j.floor.total)
    if not over:
        return None
    job, b = over[0], over[0].floor
    parts = ", ".join(f"{part} {value / GIB:.1f}" if b.total >= GIB else f"{part} {gib(value)}"
                      for part, value in b.parts().items())
    more = f" (and {len(over) - 1} more job{'s' if len(over) > 2 else ''})" if len(over) > 1 else ""
    shrunk = f", even at the smallest batches its passes shrink to (~{gib(job.breakdown.total)} at the configured " \
             f"ones)" if b.total < job.breakdown.total else ""
    return f"{job.label()}{more} needs ~{gib(b.total)} of GPU memory ({parts}){shrunk} but {name}: {advice(b, size)}"


def advice(b: Breakdown, size: float) -> str:
    """What would make the job fit, from the part that dominates at its smallest batches: never a batch size that
    halves on its own on out-of-memory."""
    if b.weights + b.gradients + b.optimizer > size * GIB:
        return "the weights alone do not fit; ask for a larger GPU or load the model in a smaller dtype (model.dtype)"
    if b.largest is None:
        return "ask for a larger GPU"
    smallest = " at the smallest batch it shrinks to on out-of-memory" if b.largest.floor is not None else ""
    what = f"its largest pass{smallest}: {b.largest.describe()}"
    return f"lower {b.largest.knob} ({what}), or ask for a larger GPU" if b.largest.knob else \
        f"ask for a larger GPU ({what})"
