"""Packed jobs (hydra.launcher.pack=row): the plan (rows, waves, controls first, no two jobs of a wave sharing an
uncached stage no earlier wave computes), the packed job's runner (failure isolation, a fatal fault stops the rest), the command's reading of
packed jobs' returns, and a real sweep through the local launcher: one model load per job, the numbers of pack=none,
zero lock waits, one result.json per cell, resume."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

from ntkeval.jobs import submitit_jobs
from ntkeval.jobs.faults import CellFailed, Fault
from ntkeval.jobs.packing import CellNeeds, PackRunner, PackedJob, plan_packs


def needs(row, learner, control, *stages):
    return CellNeeds(row=row, learner=learner, control=control, stages=frozenset(stages))


def bench_row(row: str) -> list[CellNeeds]:
    """One train skill's four cells as the bench grid has them: every cell scores the untouched model ("base:*",
    shared by all rows); icl-skill needs icl-standard's scores, tune-skill tune-base's adapter and scores."""
    base = [f"base:{t}" for t in "ab"]
    return [needs(row, "icl-standard", None, *base, f"{row}:icl-standard"),
            needs(row, "icl-skill", "icl-standard", *base, f"{row}:icl-standard", f"{row}:icl-skill"),
            needs(row, "tune-base", None, *base, f"{row}:tune-base", f"{row}:tune-base-adapter"),
            needs(row, "tune-skill", "tune-base", *base, f"{row}:tune-base", f"{row}:tune-base-adapter",
                  f"{row}:tune-skill", f"{row}:tune-skill-adapter")]


def test_the_bench_grid_runs_the_shared_stages_first_then_every_row_at_once():
    cells = bench_row("add") + bench_row("mul") + bench_row("sub")
    jobs = plan_packs(cells)
    # wave 0: only the cell that computes the untouched model's scores every row needs
    assert jobs[0] == PackedJob(0, (0,))
    # wave 1: the rest of its row, then each other row whole, controls before the learners that need them
    assert jobs[1:] == [PackedJob(1, (2, 1, 3)), PackedJob(1, (4, 6, 5, 7)), PackedJob(1, (8, 10, 9, 11))]


def test_nothing_shared_or_everything_cached_is_one_wave_of_rows():
    cells = [needs("a", "icl-skill", None, "a1"), needs("b", "icl-skill", None, "b1"), needs("a", "x", None)]
    assert plan_packs(cells) == [PackedJob(0, (0, 2)), PackedJob(0, (1,))]


@pytest.mark.parametrize("seed", range(200))
def test_no_two_jobs_of_a_wave_need_the_same_uncached_stage(seed):
    """Random grids: every cell in exactly one job; a job's cells share its row; within a wave, the jobs' stages
    share no stage that an earlier wave did not compute already (so none waits on another's lock); controls first."""
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(rng.randint(1, 12))]
    names = ["icl-standard", "icl-skill", "tune-base", "tune-skill", "x"]
    cells = []
    for _ in range(rng.randint(1, 20)):
        position = rng.randrange(len(names))
        learner = names[position]
        control = rng.choice([None, *names[position + 1:]])  # control links never loop, as in conf/learner
        cells.append(needs(f"r{rng.randint(0, 4)}", learner, control, *rng.sample(keys, rng.randint(0, len(keys)))))
    jobs = plan_packs(cells)
    placed = sorted(i for job in jobs for i in job.cells)
    assert placed == list(range(len(cells)))
    assert [job.wave for job in jobs] == sorted(job.wave for job in jobs)
    for job in jobs:
        assert len({cells[i].row for i in job.cells}) == 1
    earlier: set[str] = set()  # stages some job of an earlier wave needs, so computes, before this wave starts
    for wave in sorted({job.wave for job in jobs}):
        in_wave = [set().union(*(cells[i].stages for i in job.cells)) for job in jobs if job.wave == wave]
        for a in range(len(in_wave)):
            for b in range(a + 1, len(in_wave)):
                assert not (in_wave[a] & in_wave[b]) - earlier, (wave, in_wave)
        earlier |= set().union(*in_wave)
    for job in jobs:  # controls first within a job
        learners = [cells[i].learner for i in job.cells]
        for position, i in enumerate(job.cells):
            if cells[i].control in learners:
                assert learners.index(cells[i].control) < position


class FakeLauncher:
    """Stands for hydra-submitit-launcher's __call__: one JobReturn per cell, failing the cells told to."""

    def __init__(self, failing: dict[str, Fault]):
        self.failing, self.ran = failing, []

    def __call__(self, overrides, job_dir_key, job_num, job_id, state):
        self.ran.append(job_num)
        name = overrides[0]
        if name in self.failing:
            return JobReturn(overrides=overrides, status=JobStatus.FAILED,
                             _return_value=CellFailed(self.failing[name]))
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value={"status": "done"})


def params(*names):
    return [([name], "hydra.sweep.dir", number, f"job_id_for_{number}", {}) for number, name in enumerate(names)]


def test_a_packed_job_runs_every_cell_past_a_failed_one_and_stops_at_a_fatal_fault():
    launcher = FakeLauncher({"b": Fault("b broke"), "d": Fault("no space left on /scratch", fatal=True)})
    returns = PackRunner(launcher)(params("a", "b", "c", "d", "e", "f"))
    assert launcher.ran == [0, 1, 2, 3]  # past b's failure; nothing after d's full disk
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED,
                                           JobStatus.FAILED, JobStatus.FAILED, JobStatus.FAILED]
    assert [r.overrides for r in returns[4:]] == [["e"], ["f"]]
    assert str(returns[4]._return_value) == "not started: the job stopped (no space left on /scratch)"


class FakeJob:
    """A finished submitit job as _wait sees it."""

    def __init__(self, job_id, result=None, error=None, state="COMPLETED", tmp: Path | None = None):
        self.job_id, self._result, self._error, self.state = job_id, result, error, state
        self.paths = type("Paths", (), {"result_pickle": tmp / f"{job_id}.pkl"})()
        if result is not None:
            self.paths.result_pickle.write_text("x")

    def done(self):
        return True

    def results(self):
        if self._error is not None:
            raise self._error
        return [self._result]


def test_the_command_reads_each_cell_of_a_packed_job_and_blames_a_killed_job_on_all_its_cells(tmp_path,
                                                                                                monkeypatch):
    recorded = {}
    monkeypatch.setattr(submitit_jobs, "record", lambda overrides, fault: recorded.setdefault(overrides[0], fault))
    ok = JobReturn(overrides=["a"], status=JobStatus.COMPLETED, _return_value={})
    bad = JobReturn(overrides=["b"], status=JobStatus.FAILED, _return_value=CellFailed(Fault("b broke")))
    packed = FakeJob("1", result=[ok, bad], tmp=tmp_path)
    killed = FakeJob("2", state="TIMEOUT", tmp=tmp_path)
    returns, fatal = submitit_jobs._wait([packed, killed], [[0, 1], [2, 3]], [["a"], ["b"], ["c"], ["d"]], "Slurm",
                                         tmp_path)
    assert returns == [ok] and fatal is None
    assert recorded["b"].line == "b broke"
    assert recorded["c"] == recorded["d"] and "TIMEOUT" in recorded["c"].line.upper()


# ---------------------------------------------------------------------------------------------------------------
# A real packed sweep through the local launcher (submitit processes on this machine)

GRID = ["model=tiny", "logger=none", "learner=icl-standard,icl-skill,tune-skill",
        "pair.train=add/question,mul/question", "pair.test=[add/question,mul/question]", "dataset.n_train=8",
        "dataset.n_test=4", "tuning.steps=3", "tuning.batch_size=4"]


def sweep(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", "-m", *GRID, f"hydra.sweep.dir={tmp_path / name}",
                           f"cache_dir={tmp_path / name}-cache", *extra], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)


def rows_of(sweep_dir: Path) -> dict[str, list]:
    return {p.parent.name: json.loads(p.read_text())["tests"] for p in sweep_dir.glob("*/result.json")}


def test_a_packed_sweep_loads_once_per_job_and_gives_the_numbers_of_the_in_process_sweep(tmp_path):
    packed = sweep(tmp_path, "packed", "hydra/launcher=local", "hydra.launcher.pack=row")
    assert packed.returncode == 0, packed.stderr[-3000:]
    jobs = sum(int(n) for n in re.findall(r"submitted \d+ cells in (\d+) packed jobs", packed.stdout + packed.stderr))
    assert jobs == 3  # wave 1: the untouched model's scores; wave 2: the rest of that row, and the other row
    logs = list((tmp_path / "packed").glob("*/app.log"))
    assert len(logs) == 6 and sum(log.read_text().count("loading model") for log in logs) == jobs
    assert "6 cells done, 0 failed or missing" in packed.stderr
    assert "waiting on other jobs' locks: 0.0 s" in packed.stderr
    for result in (tmp_path / "packed").glob("*/result.json"):
        assert json.loads(result.read_text())["cache"]["lock_wait_s"] == 0.0

    alone = sweep(tmp_path, "alone")  # in-process, one job per cell: the numbers of unpacked cells
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.dumps(rows_of(tmp_path / "packed"), sort_keys=True) == \
        json.dumps(rows_of(tmp_path / "alone"), sort_keys=True)

    loads = sum(log.read_text().count("loading model") for log in logs)
    again = sweep(tmp_path, "packed", "hydra/launcher=local", "hydra.launcher.pack=row")  # resume: every cell is done already
    assert again.returncode == 0, again.stderr[-3000:]
    assert all("already done" in log.read_text() for log in logs)
    assert sum(log.read_text().count("loading model") for log in logs) == loads  # no model was loaded again


def test_a_job_uses_as_many_threads_as_it_was_given_and_never_more_than_torch_would(monkeypatch):
    import torch

    from ntkeval.jobs.allocation import allocated_cpus, limit_threads

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert allocated_cpus(None) is None and allocated_cpus(3) == 3 and allocated_cpus("x") is None
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert allocated_cpus(8) == 1  # what Slurm gave wins over the setting
    before = torch.get_num_threads()
    try:
        limit_threads(8)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "64")
        limit_threads(None)
        assert torch.get_num_threads() == 1  # never raised above what it is
    finally:
        torch.set_num_threads(before)
