"""Each job's estimated peak GPU memory (a job: one cell, or with hydra.launcher.pack=row the cells of one packing
row, run in turn on one loaded model with each cell's adapters removed after it, so its peak is its largest cell's),
the dry run's lines about them, and the one-line refusal of a job that cannot fit the GPU it asks for."""

from __future__ import annotations

from dataclasses import dataclass, field

from ntkeval.cache import stable_hash
from ntkeval.estimate.architecture import Architecture, architecture
from ntkeval.estimate.memory import GIB, Breakdown, dtype_bytes, gib, lora_bytes, pass_activations, weight_bytes
from ntkeval.estimate.workload import Lengths, cell_workload

SHOWN = 5  # jobs listed by the dry run; the rest are summed up in one line


@dataclass
class JobEstimate:
    number: int               # the job's index in launch order (Hydra's job number when each cell is a job)
    cells: list               # its Cells, in the order they run
    device: str               # where it runs: the dtype of its weights depends on it
    breakdown: Breakdown | None = None
    unknown: str | None = None  # why there is no estimate (the model's config cannot be had offline)
    notes: list[str] = field(default_factory=list)

    def label(self) -> str:
        first = self.cells[0]
        if len(self.cells) == 1:
            return f"job {self.number} ({first.model.name}, {first.learner.name}, {first.train_skill})"
        return f"job {self.number} ({first.model.name}, {first.train_skill}, {len(self.cells)} cells)"


class Estimator:
    """Cell estimates with each model's architecture and tokenizer read once per grid."""

    def __init__(self):
        self.models: dict[str, tuple[Architecture, Lengths] | str] = {}

    def model(self, loader) -> tuple[Architecture, Lengths] | str:
        """(architecture, token counter) of a model loader, or why there are none."""
        from ntkeval.backends.huggingface.loading import NotAvailableOffline

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

    def cell(self, cell, device: str) -> tuple[Breakdown, list[str]] | str:
        """The cell's peak on `device`: weights, LoRA states and its largest pass; or why it is unknown."""
        from ntkeval.backends.huggingface.dtypes import loaded_dtype

        known = self.model(cell.model)
        if isinstance(known, str):
            return known
        arch, lengths = known
        work = cell_workload(cell, lengths)
        dtype = loaded_dtype(cell.model.identity().get("dtype", "float32"), device)
        e = dtype_bytes(dtype)
        adapters = [arch.lora_parameters(config) for config in work.adapters]
        trained = max((n for n, _ in adapters), default=0) if work.trains else 0
        width = max((w for _, w in adapters), default=0)
        sized = [(pass_activations(arch, run, e, width), run) for run in work.passes]
        activations, largest = max(sized, key=lambda s: s[0], default=(0, None))
        return Breakdown(weights=weight_bytes(arch, dtype), lora=lora_bytes(sum(n for n, _ in adapters), trained),
                         activations=activations, largest=largest,
                         gradients=weight_bytes(arch, dtype) if work.full_gradient else 0), work.notes


def estimate_jobs(cells: list, devices: list[str], groups: list[list[int]]) -> list[JobEstimate]:
    """One JobEstimate per group of cell indices (a job), its peak the largest of its cells'."""
    estimator, jobs = Estimator(), []
    for number, group in enumerate(groups):
        job = JobEstimate(number, [cells[i] for i in group], devices[group[0]])
        for i in group:
            found = estimator.cell(cells[i], devices[i])
            if isinstance(found, str):
                job.unknown, job.breakdown = found, None
                break
            breakdown, notes = found
            job.notes += [n for n in notes if n not in job.notes]
            if job.breakdown is None or breakdown.total > job.breakdown.total:
                job.breakdown = breakdown
        jobs.append(job)
    return jobs


def describe(job: JobEstimate) -> str:
    b = job.breakdown
    parts = ", ".join(f"{name} {gib(size)}" for name, size in b.parts().items())
    largest = f"; largest pass: {b.largest.describe()}" if b.largest is not None else ""
    return f"{job.label()}: ~{gib(b.total)} on {job.device} ({parts}{largest})"


def memory_lines(jobs: list[JobEstimate], limit: tuple[float, str] | None) -> list[str]:
    """The dry run's report: the largest jobs, a count of the rest, the unknown ones and the limit checked."""
    known = sorted((j for j in jobs if j.breakdown is not None), key=lambda j: -j.breakdown.total)
    lines = [(f"GPU memory per job (estimated peak, weights in the dtype loaded on the job's device; the CUDA context "
              f"and allocator slack come on top): {len(jobs)} job{'s' if len(jobs) != 1 else ''}")]
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
        size, name = limit
        over = sum(j.breakdown.total > size * GIB for j in known)
        verdict = "no job's size is known" if not known else f"{over} job{'s' if over != 1 else ''} do not fit" \
            if over else f"every estimated job fits{' (the unknown ones are not checked)' if unknown else ''}"
        lines.append(f"  limit: {name}: {verdict}")
    return lines


def refusal(jobs: list[JobEstimate], limit: tuple[float, str]) -> str | None:
    """One line naming the largest job that exceeds the limit (and how many more do), or None when all fit; jobs of
    unknown size are never refused."""
    size, name = limit
    over = sorted((j for j in jobs if j.breakdown is not None and j.breakdown.total > size * GIB),
                  key=lambda j: -j.breakdown.total)
    if not over:
        return None
    job, b = over[0], over[0].breakdown
    parts = ", ".join(f"{part} {value / GIB:.1f}" if b.total >= GIB else f"{part} {gib(value)}"
                      for part, value in b.parts().items())
    more = f" (and {len(over) - 1} more job{'s' if len(over) > 2 else ''})" if len(over) > 1 else ""
    return (f"{job.label()}{more} needs ~{gib(b.total)} of GPU memory ({parts}) but {name}: "
            f"{advice(b, size)}")


def advice(b: Breakdown, size: float) -> str:
    """What would make the job fit, from the part that dominates."""
    if b.weights + b.gradients > size * GIB:
        return "the weights alone do not fit; ask for a larger GPU or load the model in a smaller dtype (model.dtype)"
    if b.largest is None or not b.largest.knob:
        return "ask for a larger GPU"
    return f"lower {b.largest.knob} (its largest pass: {b.largest.describe()}), or ask for a larger GPU"
