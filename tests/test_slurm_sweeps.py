"""ntkeval sweeps on the live one-node Slurm cluster: preemption mid-tuning, failing cells, racing cells, preflight,
a controller out of reach and a cell cancelled with scancel (each told in one line).

Run alone with `python -m pytest -m slurm`; needs root and apt-get (tests/slurm_cluster.py starts the cluster).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import REPO, slurm_cluster  # noqa: F401  the session fixture

pytestmark = pytest.mark.slurm


def sweep_command(cluster, sweep: Path, cache: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "ntkeval", "-m", "hydra/launcher=slurm", "model=tiny", "logger=none",
            "dataset.n_test=4", "dataset.n_train=8", f"hydra.sweep.dir={sweep}", f"cache_dir={cache}",
            f"hydra.launcher.partition={cluster.partition}", "hydra.launcher.mem_gb=2",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10", *overrides]


def results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/result.json")}


def cell_logs(sweep: Path) -> str:
    return "".join(p.read_text() for p in sweep.glob("*/*.log"))


def freeze_mid_tuning(launch: subprocess.Popen, cache: Path) -> str:
    """Suspend the sweep's one job while a LoRA tuning checkpoint exists, and return its id. Suspending (SIGSTOP)
    makes the test independent of the machine's speed: the tiny tuning can finish within Slurm's KillWait, and a
    kill that lands after it would leave nothing to resume."""
    deadline = time.monotonic() + 240
    while True:
        while not list(cache.glob("stages/checkpoints/*/state.pt")):  # a tuning is under way
            assert launch.poll() is None and time.monotonic() < deadline, "no tuning checkpoint appeared"
            time.sleep(0.05)
        (job_id,) = [line.split()[0] for line in subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()]
        subprocess.run(["scontrol", "suspend", job_id], check=True, timeout=30)
        if list(cache.glob("stages/checkpoints/*/state.pt")):  # still mid-tuning, now frozen
            return job_id
        subprocess.run(["scontrol", "resume", job_id], check=True, timeout=30)  # it finished in between: try again


def test_a_cell_preempted_mid_tuning_resumes_and_matches_an_uninterrupted_run(slurm_cluster, tmp_path):
    tuning = ["learner=tune-skill", "pair.test=[add/question,mul/symbol]", "tuning.steps=1500",
              "tuning.batch_size=4", "learner.checkpoint_every=100"]
    reference = subprocess.run([sys.executable, "-m", "ntkeval", "model=tiny", "logger=none", "dataset.n_test=4",
                                "dataset.n_train=8", f"cache_dir={tmp_path}/ref-cache",
                                f"hydra.run.dir={tmp_path}/ref", *tuning],
                               cwd=REPO, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    want = json.loads((tmp_path / "ref" / "result.json").read_text())["tests"]

    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    launch = subprocess.Popen(sweep_command(slurm_cluster, sweep, cache, *tuning), cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    job_id = freeze_mid_tuning(launch, cache)
    # What preemption does: Slurm kills the job and queues it again. A suspended job that is requeued is held, so
    # it is released; the checkpoint it resumes from is the one it was frozen at.
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    subprocess.run(["scontrol", "release", job_id], check=True, timeout=30)
    output, _ = launch.communicate(timeout=300)
    assert launch.returncode == 0, output[-3000:]
    (got,) = results(sweep).values()
    assert got["status"] == "done"
    assert got["tests"] == want  # the same numbers as the run nobody interrupted
    assert "resuming from the checkpoint after step" in cell_logs(sweep)
    assert "REQUEUE" in subprocess.run(["sacct", "-j", job_id, "-n", "-D", "-X", "-o", "State"],
                                       capture_output=True, text=True).stdout.upper()


def test_a_raising_cell_fails_alone_and_the_sweep_says_so(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    run = subprocess.run(sweep_command(slurm_cluster, sweep, tmp_path / "cache", "model=tiny,codellama",
                                       "learner=icl-skill", "pair.test=add/question"),
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    got = results(sweep)
    assert got["0_tiny_icl-skill_add-question"]["status"] == "done"
    failed = got["1_codellama_icl-skill_add-question"]
    assert failed["status"] == "failed" and "OSError" in failed["error"]
    assert failed["error"] in Path(failed["log"]).read_text()  # the error is in the cell's own log
    assert "1 cells done, 1 failed or missing" in run.stderr
    assert f"hydra.sweep.dir={sweep}" in run.stderr  # the command that reruns only what failed


def test_two_cells_racing_for_one_control_tune_it_once(slurm_cluster, tmp_path):
    # Same train skill, different test skills: both cells need tune-base's adapter as their control, at once.
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    run = subprocess.run(sweep_command(slurm_cluster, sweep, cache, "learner=tune-skill",
                                       "pair.test=add/question,mul/symbol", "tuning.steps=300"),
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert [r["status"] for r in results(sweep).values()] == ["done", "done"]
    logs = cell_logs(sweep)
    assert logs.count("tuning tune-base on add/question: started") == 1
    assert logs.count("tuning tune-skill on add/question: started") == 1  # the adapter ignores the test skills
    assert len(list(cache.glob("stages/adapters/*/.complete"))) == 2


def test_preflight_rejects_a_bad_grid_and_submits_nothing(slurm_cluster, tmp_path):
    before = subprocess.run(["sacct", "-n", "-X", "-a", "-o", "JobID"], capture_output=True, text=True).stdout
    run = subprocess.run(sweep_command(slurm_cluster, tmp_path / "sweep", tmp_path / "cache",
                                       "learner=icl-skill,tune-skill", "pair.train=add/questio,mul/symbl"),
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("ntkeval: error: 2 problems in the grid, nothing was run:")
    assert "'add/questio'" in run.stderr and "'mul/symbl'" in run.stderr
    after = subprocess.run(["sacct", "-n", "-X", "-a", "-o", "JobID"], capture_output=True, text=True).stdout
    assert after == before and not (tmp_path / "sweep").exists()


def told(stderr: str) -> list[str]:
    """What the command itself printed: stderr without log lines (they start with a timestamp in brackets)."""
    return [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


def all_jobs() -> str:
    return subprocess.run(["sacct", "-n", "-X", "-a", "-o", "JobID"], capture_output=True, text=True).stdout


def test_an_unreachable_controller_is_one_line_and_submits_nothing(slurm_cluster, tmp_path):
    """SLURM_CONF names a controller port nobody listens on: sbatch cannot connect, as with slurmctld down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, and nothing will listen on it
    conf = (slurm_cluster.state_dir / "etc" / "slurm.conf").read_text()
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"(?m)^SlurmctldHost=.*$", rf"\g<0>\nSlurmctldPort={port}", conf))
    sweep, before = tmp_path / "sweep", all_jobs()
    run = subprocess.run(sweep_command(slurm_cluster, sweep, tmp_path / "cache", "learner=icl-skill,tune-skill",
                                      "pair.test=add/question"),
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SLURM_CONF": str(dead)})
    assert run.returncode == 1 and run.stdout == ""
    assert re.fullmatch(r"ntkeval: error: cannot reach the Slurm controller: sbatch: error: .*"
                        r"(contact slurm controller|connect).*", run.stderr.strip()), run.stderr
    assert not sweep.exists()  # nothing half-made: no sweep dir, no job pickles, no rerun command
    assert all_jobs() == before


def test_a_cell_cancelled_with_scancel_is_one_line_and_its_rerun_finishes_the_sweep(slurm_cluster, tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    command = sweep_command(slurm_cluster, sweep, cache, "learner=tune-skill,icl-skill", "pair.test=add/question")
    launch = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:  # the tune-skill cell (array task 0) running: cancel it
        states = dict(line.split() for line in subprocess.run(
            ["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True).stdout.splitlines())
        first = [job for job, state in states.items() if job.endswith("_0") and state == "RUNNING"]
        if first:
            break
        assert launch.poll() is None and time.monotonic() < deadline, f"no running cell: {states}"
        time.sleep(0.1)
    subprocess.run(["scancel", first[0]], check=True, timeout=30)
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 1
    assert "Traceback" not in stderr
    lines = told(stderr)
    assert lines[0] == f"sweep {sweep}: 1 cells done, 1 failed or missing", lines
    assert re.fullmatch(r"waiting on other jobs' locks: \d+\.\d s.*", lines[1]), lines
    assert re.fullmatch(rf"(incomplete {sweep}/0_tiny_tune-skill_add-question|missing +grid job #0): "
                        r"cancelled by Slurm: state CANCELLED", lines[2]), lines
    assert lines[3].startswith("rerun only what did not finish") and len(lines) == 5
    rerun = lines[4].split()
    assert rerun[:2] == ["ntkeval", "-m"] and f"hydra.sweep.dir={sweep}" in rerun
    assert "hydra/launcher=slurm" in rerun and f"hydra.launcher.partition={slurm_cluster.partition}" in rerun

    again = subprocess.run([sys.executable, "-m", "ntkeval", *rerun[1:]], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "submitted 2 cells to Slurm" in again.stdout + again.stderr  # to Slurm, as the sweep went
    assert [r["status"] for r in results(sweep).values()] == ["done", "done"]


def test_packed_jobs_run_a_row_on_one_model_load_and_a_failing_row_fails_alone(slurm_cluster, tmp_path):
    """pack=row on the live cluster: the tiny rows' cells share a job and a model load each, tune-skill's control is
    tuned once per row, nobody waits on a lock, and the row whose model cannot load fails without touching them."""
    sweep = tmp_path / "sweep"
    run = subprocess.run(sweep_command(slurm_cluster, sweep, tmp_path / "cache", "hydra.launcher.pack=row",
                                       "model=tiny,codellama", "learner=icl-skill,tune-skill",
                                       "pair.train=add/question,mul/symbol", "pair.test=[add/question,mul/symbol]",
                                       "tuning.steps=20"),
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    got = results(sweep)
    assert sorted(name.split("_", 1)[1] for name, r in got.items() if r["status"] == "done") == [
        "tiny_icl-skill_add-question", "tiny_icl-skill_mul-symbol", "tiny_tune-skill_add-question",
        "tiny_tune-skill_mul-symbol"]
    assert all("OSError" in r["error"] for r in got.values() if r["status"] == "failed")
    assert "4 cells done, 4 failed or missing" in run.stderr
    assert "waiting on other jobs' locks: 0.0 s" in run.stderr
    jobs = sum(int(n) for n in re.findall(r"submitted \d+ cells in (\d+) packed jobs", run.stdout + run.stderr))
    tiny_logs = "".join(p.read_text() for p in sweep.glob("*_tiny_*/*.log"))
    # one job per model and train skill: 4 jobs, 2 of them tiny's, each loading tiny once
    assert jobs == 4 and tiny_logs.count("loading model tiny") == 2
    assert tiny_logs.count("tuning tune-base on add/question: started") == 1
