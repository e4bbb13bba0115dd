"""Slurm tests on a real one-node cluster (tests/slurm_cluster.py): sbatch, fake GPUs, submitit, and a sweep.

Run them alone with `python -m pytest -m slurm`; they need root and apt-get (Slurm is installed on first use).
"""

import json
import operator
import subprocess
import sys
import time

import pytest
import submitit
from slurm_cluster import REPO, slurm_cluster  # noqa: F401  the session fixture

pytestmark = pytest.mark.slurm


def _wait_done(job, timeout_s: float) -> None:
    """Like job.wait(), but bounded: nothing in this file may hang."""
    deadline = time.monotonic() + timeout_s
    while not job.done():
        assert time.monotonic() < deadline, f"submitit job {job.job_id} not done after {timeout_s}s: {job.state}"
        time.sleep(0.5)


def test_sbatch_job_completes_and_sacct_reports_it(slurm_cluster, tmp_path):
    job_id = slurm_cluster.sbatch("--wrap", "echo hello from $SLURM_JOB_ID", f"--output={tmp_path}/out")
    assert slurm_cluster.wait_final(job_id) == "COMPLETED"
    assert (tmp_path / "out").read_text().strip() == f"hello from {job_id}"


def test_gpu_request_is_accepted_and_runs_on_a_fake_gpu(slurm_cluster, tmp_path):
    job_id = slurm_cluster.sbatch("--gpus-per-node=1", "--wrap", "echo $CUDA_VISIBLE_DEVICES",
                                  f"--output={tmp_path}/out")
    assert slurm_cluster.wait_final(job_id) == "COMPLETED"
    assert (tmp_path / "out").read_text().strip() in {"0", "1"}
    assert "gres/gpu=1" in slurm_cluster.sacct(job_id, "AllocTRES")


def test_impossible_request_is_rejected_at_submission(slurm_cluster):
    """EnforcePartLimits=ALL: a job the node can never run fails in sbatch instead of pending forever."""
    with pytest.raises(subprocess.CalledProcessError) as error:
        slurm_cluster.sbatch("--mem=1000G", "--wrap", "true")
    assert "can not be satisfied" in error.value.stderr or "not available" in error.value.stderr


def test_submitit_job_returns_its_result(slurm_cluster, tmp_path):
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(slurm_partition=slurm_cluster.partition, timeout_min=2, cpus_per_task=1, mem_gb=1)
    assert executor.cluster == "slurm"
    job = executor.submit(operator.mul, 6, 7)
    _wait_done(job, timeout_s=60)
    assert job.result() == 42
    assert slurm_cluster.wait_final(job.job_id) == "COMPLETED"  # job.state may lag: submitit polls sacct lazily


@pytest.mark.timeout(300)  # "without hanging": a hang fails here instead of stalling the suite (not a speed target)
def test_scancelled_submitit_job_reports_cancelled_without_hanging(slurm_cluster, tmp_path):
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(slurm_partition=slurm_cluster.partition, timeout_min=2, cpus_per_task=1, mem_gb=1)
    job = executor.submit(time.sleep, 300)
    deadline = time.monotonic() + 30
    while slurm_cluster.sacct(job.job_id) != "RUNNING":
        assert time.monotonic() < deadline, f"job {job.job_id} never started: {slurm_cluster.sacct(job.job_id)!r}"
        time.sleep(0.2)
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    _wait_done(job, timeout_s=30)
    assert job.state.startswith("CANCELLED")
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="CANCELLED"):
        job.result()  # waits submitit's 15 s for a late result file (slow shared filesystems), then raises


def test_multirun_through_the_slurm_launcher_returns_every_cell(slurm_cluster, tmp_path):
    """conf/hydra/launcher/slurm.yaml as shipped (1 GPU per cell, requeue, setup lines), sized for this node."""
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "ntkeval", "-m", "hydra/launcher=slurm", "model=tiny",
        "learner=icl-skill,tune-skill", "pair.test=add/question", "dataset.n_test=4", "dataset.n_train=8",
        "tuning.steps=2", "logger=none", f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache",
        f"hydra.launcher.partition={slurm_cluster.partition}", "hydra.launcher.mem_gb=2",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
        "hydra.launcher.setup=['echo ntkeval-setup-ran on $SLURMD_NODENAME']",
    ]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr

    results = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/result.json")}
    assert sorted(results) == ["0_tiny_icl-skill_add-question", "1_tiny_tune-skill_add-question"]
    assert all(result["status"] == "done" for result in results.values()), results
    (script,) = sweep.glob(".submitit/*/*_submission.sh")
    assert "#SBATCH --gpus-per-node=1" in script.read_text() and "#SBATCH --requeue" in script.read_text()
    logs = [p.read_text() for p in sweep.glob(".submitit/*_*/*_log.out")]
    assert len(logs) == 2 and all("ntkeval-setup-ran on localhost" in log for log in logs)
