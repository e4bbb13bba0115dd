"""The `slurm_cluster` fixture: a real one-node Slurm cluster on this machine for the tests marked `slurm`.

launch/slurm/up.sh runs once per test session (it installs Slurm with apt-get if needed; root only) and
launch/slurm/down.sh at the end, unless the cluster was already up before the session (then it is left running,
as it is with NTKEVAL_SLURM_KEEP=1). Tests are skipped only where Slurm cannot be installed or run (up.sh exit 3).
Use it from a test module with `from slurm_cluster import slurm_cluster  # noqa: F401`.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "launch" / "slurm"
CANNOT_RUN = 3  # up.sh's exit status when Slurm cannot be installed or run here
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE")


@dataclass(frozen=True)
class SlurmCluster:
    """Handle on the running cluster: its partition and a few shell-outs that tests share."""

    partition: str
    state_dir: Path

    def sbatch(self, *args: str) -> str:
        """Submit with sbatch (to this partition) and return the job id."""
        out = subprocess.run(["sbatch", "--parsable", f"--partition={self.partition}", *args],
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout.strip().split(";")[0]

    def sacct(self, job_id: str, field: str = "State") -> str:
        """One accounting field of the job's allocation ('' while slurmdbd has no record yet)."""
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", field],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""

    def wait_final(self, job_id: str, timeout_s: float = 60) -> str:
        """Poll sacct until the job reaches a final state and return it, e.g. 'COMPLETED', 'CANCELLED by 0'."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.sacct(job_id)
            if state.startswith(FINAL_STATES):
                return state
            time.sleep(0.2)
        raise TimeoutError(f"Slurm job {job_id} not finished after {timeout_s:.0f}s (state {state!r})")


def _daemon_alive(state_dir: Path, name: str) -> bool:
    try:
        pid = (state_dir / "pid" / f"{name}.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().split()
    except (OSError, ValueError):
        return False
    return fields[1] == f"({name})" and fields[2] != "Z"


@pytest.fixture(scope="session")
def slurm_cluster():
    state_dir = Path(os.environ.get("NTKEVAL_SLURM_DIR", "/tmp/ntkeval-slurm"))
    was_up = _daemon_alive(state_dir, "slurmctld") and _daemon_alive(state_dir, "slurmd")
    up = subprocess.run([str(SCRIPTS / "up.sh")], capture_output=True, text=True, timeout=900)
    if up.returncode == CANNOT_RUN:
        pytest.skip(f"no Slurm cluster: {up.stderr.strip().splitlines()[-1]}")
    if up.returncode != 0:
        subprocess.run([str(SCRIPTS / "down.sh")], capture_output=True, timeout=120)
        pytest.fail(f"launch/slurm/up.sh failed (exit {up.returncode}):\n{up.stdout}{up.stderr}", pytrace=False)
    try:
        yield SlurmCluster(partition=os.environ.get("NTKEVAL_SLURM_PARTITION", "debug"), state_dir=state_dir)
    finally:
        if not was_up and not os.environ.get("NTKEVAL_SLURM_KEEP"):
            subprocess.run([str(SCRIPTS / "down.sh")], capture_output=True, timeout=120)
