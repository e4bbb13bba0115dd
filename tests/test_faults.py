"""Faults told in one line, through the `ntkeval` command on tiny models: device memory (injected), a full disk (a
small tmpfs when mounting is allowed, and an injected ENOSPC everywhere), an unwritable job dir, a cell killed with
kill -9 and rerun, and two commands on one sweep dir; each leaves one W&B run per cell. Then the pieces alone:
faults.describe, the Slurm state lines, the locks.

Faults are injected by running the command's own entry point, `ntkeval.app.main`, from a script that first patches
one function (tests/test_faults.py writes it): the same code path as the console script, with the fault on cue.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wandb_offline import read_offline_run

from ntkeval.jobs import faults, locks
from ntkeval.tracking.wandb_tracker import _log_is_complete

REPO = Path(__file__).resolve().parents[1]
TINY = ["model=tiny", "dataset.n_train=8", "dataset.n_test=4", "pair.test=add/question"]

# Device memory on cue: a forward pass over more than 8 sequences without gradients (scoring) and every backward
# pass (tuning) raise torch's OutOfMemoryError, as a small GPU would; or, with NO_DEVICE_MEMORY, every forward pass.
OUT_OF_MEMORY = '''
import torch, transformers
MESSAGE = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.2 GiB is free."
ROWS = 8
forward = transformers.LlamaForCausalLM.forward
def small_forward(self, *args, **kwargs):
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is not None and ids.shape[0] > ROWS and not torch.is_grad_enabled():
        raise torch.OutOfMemoryError(MESSAGE)
    return forward(self, *args, **kwargs)
def no_backward(self, *args, **kwargs):
    raise torch.OutOfMemoryError(MESSAGE)
transformers.LlamaForCausalLM.forward = small_forward
torch.Tensor.backward = no_backward
'''
NO_DEVICE_MEMORY = OUT_OF_MEMORY.replace("ROWS = 8", "ROWS = 0")

# A full disk on cue: the first cell's questions.jsonl cannot be written.
NO_SPACE = '''
import errno, os
import ntkeval.cell
write = ntkeval.cell.atomic_write_text
def full_disk(path, text):
    if str(path).endswith("questions.jsonl"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    write(path, text)
ntkeval.cell.atomic_write_text = full_disk
'''


def ntkeval(*args: str, cwd: Path, inject: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_command(args, cwd, inject), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _command(args, cwd: Path, inject: str | None = None) -> list[str]:
    if inject is None:
        return [sys.executable, "-m", "ntkeval", *args]
    script = cwd / f"inject_{abs(hash(inject))}.py"
    script.write_text(inject + "\nimport sys\nsys.argv[0] = 'ntkeval'\nfrom ntkeval.app import main\nmain()\n")
    return [sys.executable, str(script), *args]


def told(stderr: str) -> list[str]:
    """What the command itself printed: stderr without the cells' log lines, progress bars and libraries' warnings
    (a warning's source line follows it, indented)."""
    lines, after_warning = [], False
    for line in stderr.splitlines():
        warning = re.search(r"\S+:\d+: \w*Warning: ", line) is not None
        bar = re.search(r"(it/s|s/it)\]", line) is not None  # a progress bar, fast or slow
        if line.strip() and not line.startswith("[") and not bar and not warning and not (
                after_warning and line.startswith("  ")):
            lines.append(line.strip())
        after_warning = warning
    return lines


def offline_runs(sweep: Path) -> dict[str, list[Path]]:
    """Offline W&B run dirs under a sweep, by run id."""
    runs: dict[str, list[Path]] = {}
    for path in sweep.glob("*/wandb/offline-run-*"):
        runs.setdefault(path.name.split("-")[-1], []).append(path)
    return runs


def results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/result.json")}


def assert_nothing_corrupt(sweep: Path) -> None:
    """Every result.json parses, no temporary file is left, and every W&B run on disk is complete."""
    for path in sweep.glob("*/result.json"):
        assert json.loads(path.read_text())["status"] in ("done", "failed")
    assert not [p for p in sweep.rglob(".*") if re.match(r"\.(result\.json|questions\.jsonl)\.", p.name)]
    for run_dir in sweep.glob("*/wandb/offline-run-*"):
        (log_file,) = run_dir.glob("run-*.wandb")
        assert _log_is_complete(log_file), f"{log_file} has no exit record"


# ---------------------------------------------------------------------------------------------------------------
# Device memory


def test_out_of_memory_retries_scoring_smaller_and_names_the_stage_and_the_setting_when_that_cannot_help(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY[:2], "dataset.n_test=16", *TINY[3:], "learner=icl-skill,tune-skill", "tuning.steps=2",
            "tuning.batch_size=4", "logger=none", f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache"]
    first = ntkeval(*args, cwd=tmp_path, inject=OUT_OF_MEMORY)
    assert first.returncode == 1, first.stderr[-3000:]
    lines = told(first.stderr)
    assert "Traceback" not in first.stderr
    # Scoring's batches of 16 ran out and were retried at 8; tuning's batch size changes the results, so it fails.
    assert lines[0] == f"sweep {sweep}: 1 cells done, 1 failed or missing", lines
    assert [line for line in lines if line.startswith("failed")] == [
        f"failed     {sweep}/1_tiny_tune-skill_add-question: out of device memory while tuning (CUDA out of memory. "
        f"Tried to allocate 2.00 GiB.): lower tuning.batch_size (now 4), e.g. tuning.batch_size=2; that changes the "
        f"results, so run it as a new sweep"], lines
    assert not any(line.startswith("rerun") for line in lines)  # rerunning the same sweep cannot help
    assert results(sweep)["0_tiny_icl-skill_add-question"]["status"] == "done"
    log_text = (sweep / "0_tiny_icl-skill_add-question" / "app.log").read_text()
    assert ("scoring add/question under base: out of memory at batch size 16; retrying at batch size 8 (numbers are "
            "unchanged)") in log_text
    log_text = (sweep / "1_tiny_tune-skill_add-question" / "app.log").read_text()
    assert "Traceback" in log_text and "OutOfMemoryError" in log_text  # the traceback went to the cell's log

    # A device that holds no sequence: scoring fails at batch size 1, where lowering scorer.batch_size cannot help.
    sweep = tmp_path / "no-memory"
    second = ntkeval("-m", *TINY, "learner=icl-skill", "logger=none", f"hydra.sweep.dir={sweep}",
                     f"cache_dir={tmp_path}/cache-2", cwd=tmp_path, inject=NO_DEVICE_MEMORY)
    assert second.returncode == 1, second.stderr[-3000:]
    lines = told(second.stderr)
    assert lines[0] == f"sweep {sweep}: 0 cells done, 1 failed or missing", lines
    assert [line for line in lines if line.startswith("failed")] == [
        f"failed     {sweep}/0_tiny_icl-skill_add-question: out of device memory while scoring (CUDA out of memory. "
        f"Tried to allocate 2.00 GiB.): even a batch of one does not fit, so lowering scorer.batch_size (now 16, "
        f"halved on its own at each out-of-memory) cannot help; use a device with more memory"], lines
    assert not any(line.startswith("rerun") for line in lines)


# ---------------------------------------------------------------------------------------------------------------
# Disks


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill up ({done.stderr.strip() or 'not root'})")


def test_a_full_disk_stops_the_sweep_in_one_line_and_the_rerun_finishes_it(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "120k")  # room for about one tiny cell with its W&B run, never for three
    try:
        sweep = disk / "sweep"
        args = ["-m", *TINY, "learner=icl-skill", "pair.train=add/question,mul/symbol,add/word", "logger=wandb",
                f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache"]
        full = ntkeval(*args, cwd=tmp_path)
        assert full.returncode == 1
        assert "Traceback" not in full.stderr and "Logging error" not in full.stderr
        lines = told(full.stderr)
        assert re.fullmatch(rf"ntkeval: error: no space left on {disk}( \(writing {sweep}\S*\))?; no further "
                            rf"cells were started", lines[0]), lines
        assert len(lines) <= 7, lines  # the error, the summary's head, at most 3 cells, the rerun command
        started = sorted(p.name for p in sweep.iterdir() if (p / ".hydra").is_dir())
        assert started == ["0_tiny_icl-skill_add-question", "1_tiny_icl-skill_mul-symbol",
                           "2_tiny_icl-skill_add-word"][:len(started)]  # none started after the one that failed
        assert_nothing_corrupt(sweep)

        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        rerun = ntkeval(*lines[-1].split()[1:], cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert [r["status"] for r in results(sweep).values()] == ["done"] * 3
        assert sorted(len(dirs) for dirs in offline_runs(sweep).values()) == [1, 1, 1]
        assert_nothing_corrupt(sweep)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_an_injected_enospc_stops_the_sweep_and_leaves_nothing_half_written(tmp_path):
    sweep = tmp_path / "sweep"
    done = ntkeval("-m", *TINY, "learner=icl-skill", "pair.train=add/question,mul/symbol", "logger=wandb",
                   f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache", cwd=tmp_path, inject=NO_SPACE)
    assert done.returncode == 1
    job = sweep / "0_tiny_icl-skill_add-question"
    fault = f"no space left on {faults.mount_point(job)} (writing {job}/questions.jsonl)"
    lines = told(done.stderr)
    assert lines[:3] == [f"ntkeval: error: {fault}; no further cells were started",
                         f"sweep {sweep}: 0 cells done, 2 failed or missing",
                         f"failed     {job}: {fault}"], lines
    assert lines[3].startswith("missing    grid job #1: no job dir has the overrides") and "mul/symbol" in lines[3]
    assert lines[4:5] == ["rerun only what did not finish (done cells are skipped, cached stages reused):"]
    assert lines[5].startswith("ntkeval -m ") and lines[5].endswith(f"hydra.sweep.dir={sweep}") and len(lines) == 6
    assert not (sweep / "1_tiny_icl-skill_mul-symbol").exists()
    assert json.loads((job / "result.json").read_text())["status"] == "failed"
    assert not list(job.glob("wandb/offline-run-*"))  # its W&B run may be cut short anywhere: deleted
    assert_nothing_corrupt(sweep)


def _read_only(path: Path) -> None:
    """Make `path` unwritable, for root too (a read-only mount) when mounting is allowed, else by its mode."""
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(path)], capture_output=True)
        if mount.returncode == 0:
            return
        pytest.skip("root ignores directory modes and cannot mount here: no way to make a dir unwritable")
    path.chmod(0o555)


def test_an_unwritable_job_dir_is_one_line_and_stops_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    job = sweep / "0_tiny_icl-skill_add-question"
    _read_only(job)
    try:
        done = ntkeval("-m", *TINY, "learner=icl-skill", "pair.train=add/question,mul/symbol", "logger=none",
                       f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache", cwd=tmp_path)
    finally:
        subprocess.run(["umount", str(job)], capture_output=True)
        job.chmod(0o755)
    assert done.returncode == 1
    lines = told(done.stderr)
    assert "Traceback" not in done.stderr
    assert re.fullmatch(rf"ntkeval: error: cannot write to {job}/\S+: (Read-only file system|Permission denied); "
                        rf"no further cells were started", lines[0]), lines
    assert lines[1] == f"sweep {sweep}: 0 cells done, 2 failed or missing"
    assert lines[-1].startswith("ntkeval -m ") and not (sweep / "1_tiny_icl-skill_mul-symbol").exists()


# ---------------------------------------------------------------------------------------------------------------
# One W&B run per cell


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc.poll() is None, f"the command ended before {what}: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s}s"
        time.sleep(0.05)


def test_a_cell_killed_with_kill_9_and_rerun_keeps_one_wandb_run(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "learner=tune-skill,icl-skill", "pair.train=add/question", "tuning.steps=40",
            "tuning.batch_size=4", "logger=wandb", f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache"]
    first = subprocess.Popen(_command(args, tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: list(sweep.glob("0_*/wandb/offline-run-*")), "W&B run of the first cell", first)
        os.killpg(first.pid, signal.SIGKILL)  # the command, its cell and wandb-core, as a lost node would
    finally:
        first.kill()
        first.communicate()
    assert not (sweep / "0_tiny_tune-skill_add-question" / "result.json").exists()  # killed mid-cell (tuning)
    assert [len(d) for d in offline_runs(sweep).values()] == [1]

    rerun = ntkeval(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    cells = results(sweep)
    runs = offline_runs(sweep)
    assert sorted(runs) == sorted(r["cell"]["cell_id"] for r in cells.values())
    assert [len(dirs) for dirs in runs.values()] == [1, 1]  # one run dir per cell id, the killed cell's included
    for (run_dir,) in runs.values():
        run = read_offline_run(run_dir)
        assert run["summary"]["delta_mean"] is not None and run["tables"]["questions"]["data"]
    assert_nothing_corrupt(sweep)


def test_a_second_command_on_a_running_sweep_refuses_and_names_the_first(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "learner=icl-skill", "pair.train=add/question,mul/symbol", "logger=wandb",
            f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path}/cache"]
    first = subprocess.Popen(_command(args, tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    lock = sweep / ".ntkeval-driver.lock"
    try:
        _wait_for(lambda: lock.exists() and lock.stat().st_size > 0, "lock on the sweep dir", first)
        first.send_signal(signal.SIGSTOP)  # hold the first mid-sweep, however fast this machine is
        second = ntkeval(*args, cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 1 and second.stdout == ""
    assert re.fullmatch(rf"ntkeval: error: sweep dir {sweep} is in use by another ntkeval: pid {first.pid} on host "
                        rf"{re.escape(socket.gethostname())} since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d: ntkeval .*",
                        second.stderr.strip()), second.stderr
    assert [len(dirs) for dirs in offline_runs(sweep).values()] == [1, 1]
    for log_file in sweep.glob("*/app.log"):  # each cell ran once, its log written by one command
        assert log_file.read_text().count("stages: ") == 1


# ---------------------------------------------------------------------------------------------------------------
# The pieces


def test_describe_tells_disk_faults_by_errno_and_only_writes_under_the_job_dir(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a" / "result.json"))
    wrapped = ValueError("Unable to configure handler 'file'")
    wrapped.__cause__ = full
    fault = faults.describe(wrapped, out_dir=tmp_path)
    assert fault.fatal and fault.known
    assert fault.line == f"no space left on {faults.mount_point(tmp_path)} (writing {tmp_path}/a/result.json)"
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "job" / "app.log"))
    assert faults.describe(denied, out_dir=tmp_path).line == \
        f"cannot write to {tmp_path}/job/app.log: Permission denied"
    read_elsewhere = PermissionError(errno.EACCES, "Permission denied", "/models/llama/config.json")
    assert not faults.describe(read_elsewhere, out_dir=tmp_path).known  # a read, not the job's output
    assert faults.describe(RuntimeError("boom\nmore"), out_dir=tmp_path) == faults.Fault("RuntimeError: boom",
                                                                                         known=False)


def test_slurm_states_and_remote_tracebacks_become_lines():
    assert faults.ended_by_scheduler("CANCELLED by 0").line == "cancelled by Slurm: state CANCELLED"
    assert faults.ended_by_scheduler("OUT_OF_MEMORY").rerun is None
    assert "timeout_min" in faults.ended_by_scheduler("TIMEOUT").line
    text = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call "
            "last):\n  File \"x.py\", line 1\nOSError: [Errno 28] No space left on device: '/scratch/s/0_a/.hydra/"
            "config.yaml'\n----------------------\nYou can check full logs with 'job.stderr(0)' and 'job.stdout(0)'")
    assert faults.from_traceback_text(text).line.startswith("no space left on / (writing /scratch/s/0_a/.hydra/")
    assert faults.from_traceback_text("Traceback\nKeyError: 'x'").line == \
        "the job failed outside the cell: KeyError: 'x'"


def test_a_lock_refuses_a_second_holder_by_name_and_frees_on_release(tmp_path):
    path = tmp_path / ".lock"
    with locks.hold(path):
        with pytest.raises(locks.Busy, match=rf"pid {os.getpid()} on host {re.escape(socket.gethostname())} since "):
            locks.hold(path)
    locks.hold(path).release()  # released: free again
    holder = subprocess.Popen([sys.executable, "-c", f"from ntkeval.jobs import locks; import time; "
                               f"locks.hold({str(path)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.Busy, match=rf"pid {holder.pid} "):
            locks.hold(path)
        holder.send_signal(signal.SIGKILL)  # the kernel drops a dead holder's lock
        holder.wait()
        locks.hold(path).release()
    finally:
        holder.kill()
