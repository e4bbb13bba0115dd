"""Packed jobs (hydra.launcher.pack=row): the plan (one job per row, controls first, a job that needs a stage
another job computes submitted after it), the packed job's runner (failure isolation, a fatal fault stops the rest), the command's reading of
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


def test_one_job_per_row_controls_first_and_rows_that_share_a_stage_start_after_its_owner():
    cells = bench_row("add") + bench_row("mul") + bench_row("sub")
    jobs = plan_packs(cells)
    # one job per train skill, controls before the learners that need them
    assert [job.cells for job in jobs] == [(0, 2, 1, 3), (4, 6, 5, 7), (8, 10, 9, 11)]
    # icl-standard on add, the first to need the untouched model's scores, computes them; the other rows' jobs are
    # submitted when it has finished, while add's job goes on with its other cells
    assert [job.after for job in jobs] == [frozenset(), {0}, {0}]


def test_nothing_shared_needs_no_waiting():
    cells = [needs("a", "icl-skill", None, "a1"), needs("b", "icl-skill", None, "b1"), needs("a", "x", None)]
    assert plan_packs(cells) == [PackedJob((0, 2)), PackedJob((1,))]


@pytest.mark.parametrize("seed", range(200))
def test_every_stage_is_computed_by_one_job_while_the_others_that_need_it_wait_unsubmitted(seed):
    """Random grids: one job per row, every cell in exactly one; for each stage, all jobs that need it but one
    start after a cell (of another job) that needs it too, so is done with it; the jobs can be started in an order
    (nobody waits for a job that waits for it); controls first within a job."""
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
    assert sorted(i for job in jobs for i in job.cells) == list(range(len(cells)))
    assert [len({cells[i].row for i in job.cells}) for job in jobs] == [1] * len(jobs)
    assert len({cells[job.cells[0]].row for job in jobs}) == len(jobs)
    job_of = {i: n for n, job in enumerate(jobs) for i in job.cells}
    for key in keys:
        needing = [n for n, job in enumerate(jobs) if any(key in cells[i].stages for i in job.cells)]
        free = [n for n in needing if not any(key in cells[c].stages and job_of[c] != n for c in jobs[n].after)]
        assert len(free) <= 1, (key, needing, free)
    started: set[int] = set()  # start every job whose `after` cells are all in started jobs, until none is left
    while len(started) < len(jobs):
        can = [n for n, job in enumerate(jobs) if n not in started and all(job_of[c] in started for c in job.after)]
        assert can, "jobs wait for each other"
        started.update(can)
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


def test_a_packed_job_runs_every_cell_past_a_failed_one_and_stops_at_a_fatal_fault(tmp_path):
    launcher = FakeLauncher({"b": Fault("b broke"), "d": Fault("no space left on /scratch", fatal=True)})
    returns = PackRunner(launcher, str(tmp_path / "finished"))(params("a", "b", "c", "d", "e", "f"))
    assert launcher.ran == [0, 1, 2, 3]  # past b's failure; nothing after d's full disk
    assert sorted(p.name for p in (tmp_path / "finished").iterdir()) == ["0", "1", "2", "3"]  # each marked finished
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED,
                                           JobStatus.FAILED, JobStatus.FAILED, JobStatus.FAILED]
    assert [r.overrides for r in returns[4:]] == [["e"], ["f"]]
    assert str(returns[4]._return_value) == "not started: the job stopped (no space left on /scratch)"


class FakeJob:
    """A finished submitit job as _run sees it."""

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


def test_the_command_submits_a_job_once_its_owner_finished_and_reads_each_cell_of_a_packed_job(tmp_path,
                                                                                                  monkeypatch):
    """Job 2 starts after cell 0 (of job 1): it is submitted only once job 1 has ended; each cell of a packed job
    is read on its own, and a job Slurm killed is every one of its cells' fault."""
    recorded, submissions = {}, []
    monkeypatch.setattr(submitit_jobs, "record", lambda overrides, fault: recorded.setdefault(overrides[0], fault))
    ok = JobReturn(overrides=["a"], status=JobStatus.COMPLETED, _return_value={})
    bad = JobReturn(overrides=["b"], status=JobStatus.FAILED, _return_value=CellFailed(Fault("b broke")))
    handles = iter([[FakeJob("1", result=[ok, bad], tmp=tmp_path)], [FakeJob("2", state="TIMEOUT", tmp=tmp_path)]])

    def submit(launcher, overrides, jobs, initial_job_idx, cluster, sweep_dir, first=True):
        submissions.append(jobs)
        return next(handles)

    monkeypatch.setattr(submitit_jobs, "_submit", submit)
    jobs = [PackedJob((0, 1)), PackedJob((2, 3), after=frozenset({0}))]
    returns, fatal = submitit_jobs._run(None, jobs, [["a"], ["b"], ["c"], ["d"]], 0, "Slurm", tmp_path)
    assert submissions == [[[0, 1]], [[2, 3]]]  # one at a time: the second once the first had ended
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


def test_a_packed_sweep_loads_once_per_job_and_gives_the_numbers_of_a_process_per_cell(tmp_path):
    packed = sweep(tmp_path, "packed", "hydra/launcher=local", "hydra.launcher.pack=row")
    assert packed.returncode == 0, packed.stderr[-3000:]
    jobs = sum(int(n) for n in re.findall(r"submitted \d+ cells in (\d+) packed jobs", packed.stdout + packed.stderr))
    assert jobs == 2  # one per train skill
    logs = list((tmp_path / "packed").glob("*/app.log"))
    assert len(logs) == 6 and sum(log.read_text().count("loading model") for log in logs) == jobs
    assert "6 cells done, 0 failed or missing" in packed.stderr
    assert "waiting on other jobs' locks: 0.0 s" in packed.stderr
    for result in (tmp_path / "packed").glob("*/result.json"):
        assert json.loads(result.read_text())["cache"]["lock_wait_s"] == 0.0

    alone = sweep(tmp_path, "alone", "hydra/launcher=local", "hydra.launcher.pack=none")  # a process per cell
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


def test_a_failed_cell_in_a_packed_job_leaves_nothing_of_its_frames_alive_for_the_next(tmp_path):
    """A failed cell's exception (raised from the error, with its traceback) would keep its frames' tensors alive
    for the rest of the job; the runner keeps only its fault."""
    import weakref

    class Big:
        pass

    alive = []

    class Failing(FakeLauncher):
        def __call__(self, overrides, job_dir_key, job_num, job_id, state):
            def cell():
                batch = Big()  # what a failing frame holds: a batch, activations, optimizer states
                alive.append(weakref.ref(batch))
                raise RuntimeError("tuning broke")

            try:
                cell()
            except RuntimeError as error:
                failed = CellFailed(Fault("RuntimeError: tuning broke", known=False))
                try:
                    raise failed from error
                except CellFailed as raised:
                    return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=raised)

    returns = PackRunner(Failing({}), str(tmp_path / "finished"))(params("a", "b"))
    assert [str(r._return_value) for r in returns] == ["RuntimeError: tuning broke"] * 2
    assert all(r._return_value.__traceback__ is None and r._return_value.__cause__ is None for r in returns)
    assert [ref() for ref in alive] == [None, None]


def test_a_packed_job_starts_no_cell_once_the_sweep_stopped(tmp_path):
    """The command marks the sweep stopped (a fatal fault in another job): a running packed job finishes the cell
    it is in and starts no further one."""
    from ntkeval.jobs.packing import stop_marker

    class StopsTheSweep(FakeLauncher):
        def __call__(self, overrides, *rest):
            returned = super().__call__(overrides, *rest)
            stop_marker(tmp_path / "finished").touch()  # as the command does when another job hit a full disk
            return returned

    launcher = StopsTheSweep({})
    returns = PackRunner(launcher, str(tmp_path / "finished"))(params("a", "b", "c"))
    assert launcher.ran == [0]
    assert [str(r._return_value) for r in returns[1:]] == ["not started: the sweep stopped"] * 2
