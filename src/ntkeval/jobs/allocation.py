"""A job's CPU threads: as many as its allocation (Slurm's SLURM_CPUS_PER_TASK, else the launcher's cpus_per_task),
not torch's default of every core of the node. A cluster that does not pin jobs to their CPUs (and submitit's local
executor, which runs every job at once) would otherwise put several jobs' full thread pools on the same cores, where
OpenMP's spinning threads slow all of them down many times over."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def allocated_cpus(cpus_per_task: int | None) -> int | None:
    """The CPUs this job was given: Slurm's word for it first (it is what the node enforces), else the setting."""
    for value in (os.environ.get("SLURM_CPUS_PER_TASK"), cpus_per_task):
        try:
            if value is not None and int(value) >= 1:
                return int(value)
        except (TypeError, ValueError):
            continue
    return None


def limit_threads(cpus_per_task: int | None) -> None:
    """Cap torch's intra-op threads at the job's CPUs (never raise them: a user's OMP_NUM_THREADS=1 stands)."""
    cpus = allocated_cpus(cpus_per_task)
    if cpus is None:
        return
    import torch

    if cpus < torch.get_num_threads():
        log.info("using %d CPU threads, the job's allocation (torch would use %d)", cpus, torch.get_num_threads())
        torch.set_num_threads(cpus)
