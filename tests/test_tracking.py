"""The tracking module: offline W&B runs read back from disk, resumption by run id, the null tracker, and failures."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import pytest
from omegaconf import open_dict
from wandb_offline import read_offline_run

from ntkeval import app, cache
from ntkeval.errors import UserError
from ntkeval.tracking.base import NoLogger, NullTracker
from ntkeval.tracking.wandb_tracker import (
    WandbLogger,
    WandbTracker,
    _log_is_complete,
    remove_earlier_attempts,
    run_id_for,
)


@pytest.fixture(autouse=True)
def isolated_wandb_env(tmp_path, monkeypatch):
    """Keep W&B away from the user's settings and undo the env defaults that start() sets."""
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    for key in [k for k in os.environ if k.startswith("WANDB_") and k not in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")]:
        monkeypatch.delenv(key)
    yield
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key, raising=False)  # anything start() set; monkeypatch restores what was there before


def _start(logger, cell_key, tmp_path, **overrides):
    kwargs = dict(run_id=run_id_for(cell_key), name=f"name-{cell_key}", group="sweep-1", job_type="tune-skill",
                  config={"model": {"name": cell_key, "lora": {"r": 8}}, "seed": 3, "skills": ["add", "mul"]},
                  dir=str(tmp_path / cell_key))
    kwargs.update(overrides)
    return logger.start(**kwargs)


def test_two_offline_runs_in_one_process_read_back(tmp_path):
    logger = WandbLogger(project="ntkeval-test", mode="offline", tags=["t1"])
    steps = 400  # enough history to spill the transaction log over several 32 KiB blocks
    for index, cell in enumerate(["cell-a", "cell-b"]):
        tracker = _start(logger, cell, tmp_path)
        assert isinstance(tracker, WandbTracker)
        for step in range(steps):
            tracker.log({"train/loss": 1.0 / (step + 1) + index}, step=step)
        tracker.summary({"add/question/delta": 0.12 + index, "mul/question/ci_low": -0.5, "delta_mean": 0.25,
                         "status": "done"})
        tracker.table("questions", ["id", "skill", "p_learner"], [[0, "add", 0.5], [1, "mul", None]])
        tracker.finish()

        assert tracker.run_dir.parent == tmp_path / cell / "wandb"
        assert tracker.run_dir.name.startswith("offline-run-")
        assert (tracker.run_dir / f"run-{run_id_for(cell)}.wandb").stat().st_size > 32768
        run = read_offline_run(tracker.run_dir)
        assert run["run_id"] == run_id_for(cell) == tracker.run_id
        assert (run["name"], run["group"], run["job_type"]) == (f"name-{cell}", "sweep-1", "tune-skill")
        assert run["project"] == "ntkeval-test" and run["tags"] == ["t1"]
        assert run["config"] == {"model": {"name": cell, "lora": {"r": 8}}, "seed": 3, "skills": ["add", "mul"]}
        assert run["summary"]["add/question/delta"] == pytest.approx(0.12 + index)
        assert run["summary"]["mul/question/ci_low"] == -0.5
        assert run["summary"]["status"] == "done"
        assert run["summary"]["train/loss"] == pytest.approx(1.0 / steps + index)
        losses = [row["train/loss"] for row in run["history"] if "train/loss" in row]
        assert losses == pytest.approx([1.0 / (s + 1) + index for s in range(steps)])
        assert [row["_step"] for row in run["history"] if "train/loss" in row] == list(range(steps))
        assert run["summary"]["questions"]["_type"] == "table-file"
        assert run["tables"]["questions"] == {"columns": ["id", "skill", "p_learner"],
                                              "data": [[0, "add", 0.5], [1, "mul", None]]}


def test_a_rerun_replaces_the_earlier_attempts_offline_dir(tmp_path):
    """wandb cannot resume an offline run (each init writes a new dir): the rerun's dir must be the run's only one."""
    logger = WandbLogger(mode="offline")
    dirs = []
    for attempt in range(2):
        tracker = _start(logger, "requeued-cell", tmp_path)
        tracker.log({"train/loss": float(attempt)}, step=attempt)
        tracker.finish()
        dirs.append(tracker.run_dir)
    assert sorted((tmp_path / "requeued-cell" / "wandb").glob("offline-run-*")) == [dirs[1]]
    run = read_offline_run(dirs[1])
    assert run["run_id"] == run_id_for("requeued-cell")
    assert [row["train/loss"] for row in run["history"]] == [1.0]
    assert (tmp_path / "requeued-cell" / "wandb" / "latest-run").resolve() == dirs[1]


def test_only_the_same_run_ids_earlier_dirs_are_removed(tmp_path):
    wandb_dir = tmp_path / "wandb"
    run_id = run_id_for("cell")
    keep = [wandb_dir / f"offline-run-20260101_000000-{run_id}0", wandb_dir / "offline-run-20260101_000000-other",
            wandb_dir / f"run-20260101_000000-{run_id}"]  # a longer id, another id, an online run's local files
    gone = [wandb_dir / f"offline-run-20260101_000000-{run_id}", wandb_dir / f"offline-run-20260101_000001-{run_id}-1"]
    for path in keep + gone:
        path.mkdir(parents=True)
    (wandb_dir / "latest-run").symlink_to(gone[1])
    assert sorted(remove_earlier_attempts(tmp_path, run_id)) == gone
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
    assert not (wandb_dir / "latest-run").is_symlink()  # no link left pointing at a removed run


def test_discard_deletes_a_runs_files_without_waiting_for_its_log(tmp_path):
    tracker = _start(WandbLogger(mode="offline"), "full-disk", tmp_path)
    tracker.log({"train/loss": 1.0}, step=0)
    tracker.discard()
    assert not tracker.run_dir.exists()
    assert not list((tmp_path / "full-disk" / "wandb").glob("offline-run-*"))
    tracker.finish()  # a discarded run accepts no more calls and raises nothing


def test_run_id_for_is_stable_and_valid():
    assert run_id_for("model|icl-skill|add/question") == run_id_for("model|icl-skill|add/question")
    assert run_id_for("a") != run_id_for("b")
    assert re.fullmatch(r"[0-9a-f]{16}", run_id_for("model|icl-skill|add/question"))


def test_invalid_run_id_is_hashed(tmp_path):
    tracker = _start(WandbLogger(mode="offline"), "cell-c", tmp_path, run_id="model|learner|add/question")
    tracker.finish()
    assert read_offline_run(tracker.run_dir)["run_id"] == run_id_for("model|learner|add/question")


def test_null_tracker_and_no_logger_accept_every_call(tmp_path):
    for tracker in (NullTracker(), NoLogger().start(run_id="x", name="n", group="g", job_type="j", config={},
                                                    dir=str(tmp_path)), _start(WandbLogger(mode="disabled"), "d",
                                                                               tmp_path)):
        assert isinstance(tracker, NullTracker) and tracker.run_dir is None
        tracker.log({"train/loss": 1.0}, step=0)
        tracker.summary({"a": 1})
        tracker.table("questions", ["a"], [[1]])
        tracker.finish(exit_code=1)
        tracker.discard()
    assert not (tmp_path / "d").exists()


def test_bad_mode_is_a_user_error_naming_value_and_choices():
    with pytest.raises(UserError, match=r"wandb mode 'offlin'.*offline, online, disabled"):
        WandbLogger(mode="offlin")


def test_init_failure_falls_back_to_null_tracker(tmp_path, monkeypatch, caplog):
    import wandb

    def broken_init(**kwargs):
        raise RuntimeError("service did not start")

    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING, logger="ntkeval.tracking.wandb_tracker"):
        tracker = _start(WandbLogger(mode="online"), "cell-e", tmp_path)
    assert isinstance(tracker, NullTracker)
    assert "service did not start" in caplog.text


def test_failure_mid_run_stops_mirroring_but_still_finishes(caplog):
    class FlakyRun:
        id, sync_dir = "r1", "/nowhere/offline-run-x-r1"

        def __init__(self):
            self.calls = []

        def log(self, metrics, step=None):
            self.calls.append("log")
            raise OSError("disk full")

        def finish(self, exit_code=0):
            self.calls.append(f"finish:{exit_code}")

    run = FlakyRun()
    tracker = WandbTracker(run)
    with caplog.at_level(logging.WARNING, logger="ntkeval.tracking.wandb_tracker"):
        tracker.log({"train/loss": 1.0}, step=0)
        tracker.log({"train/loss": 0.5}, step=1)
        tracker.finish(exit_code=1)
        tracker.finish()
    assert run.calls == ["log", "finish:1"]
    assert caplog.text.count("disk full") == 1


def test_finish_says_whether_the_run_on_disk_is_complete(tmp_path):
    tracker = _start(WandbLogger(mode="offline"), "cell-f", tmp_path)
    tracker.summary({"delta_mean": 0.5})
    assert tracker.finish() is True and tracker.finish() is True
    assert WandbLogger(mode="offline").has_complete_run(run_id=run_id_for("cell-f"), dir=str(tmp_path / "cell-f"))
    assert not WandbLogger(mode="offline").has_complete_run(run_id=run_id_for("other"), dir=str(tmp_path / "cell-f"))
    tracker.discard()
    assert tracker.finish() is False  # nothing of it is left on disk
    assert not WandbLogger(mode="offline").has_complete_run(run_id=run_id_for("cell-f"), dir=str(tmp_path / "cell-f"))
    for logger in (NoLogger(), WandbLogger(mode="online"), WandbLogger(mode="disabled")):
        assert logger.has_complete_run(run_id="x", dir=str(tmp_path / "nothing-here"))  # nothing to rebuild locally
    assert NullTracker().finish() is True


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_done_cells_missing_or_cut_short_run_is_rebuilt_from_disk_without_recomputing(
        damage, compose_config, tmp_path, monkeypatch, caplog):
    """A full disk can cost a done cell its W&B run (deleted, or its log without the exit record); the rerun skips
    the cell and rebuilds its run from result.json and questions.jsonl: the same run, and no stage computed."""
    cfg = compose_config("model=tiny", "learner=tune-skill", "dataset.n_train=8", "dataset.n_test=4",
                         "pair.test=[add/question,mul/symbol]", "tuning.steps=3", "tuning.batch_size=4",
                         "logger=wandb", f"cache_dir={tmp_path / 'cache'}")
    with open_dict(cfg):
        del cfg["hydra"]  # the job's runtime dirs: resolved only inside a running Hydra job
    out_dir = tmp_path / "job"

    def rerun() -> dict:
        return app.run_locked(cfg, out_dir, log_file=out_dir / "app.log", group="sweep-1")

    result = rerun()
    (run_dir,) = (out_dir / "wandb").glob("offline-run-*")
    original = read_offline_run(run_dir)
    log_file = run_dir / f"run-{original['run_id']}.wandb"
    if damage == "deleted":
        shutil.rmtree(run_dir)
    else:
        os.truncate(log_file, log_file.stat().st_size - 8)  # the exit record, last in the log, is cut off
        assert not _log_is_complete(log_file)

    caches, init = [], cache.StageCache.__init__

    def remembered(self, *args, **kwargs):  # every stage cache the rerun opens, to count what it computed
        init(self, *args, **kwargs)
        caches.append(self)

    monkeypatch.setattr(cache.StageCache, "__init__", remembered)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = rerun()
    assert again == json.loads(json.dumps(result))
    assert "nothing recomputed" in caplog.text and "rebuilding it from result.json" in caplog.text
    assert "loading model" not in caplog.text
    assert caches and all(sum(c.misses.values()) == 0 for c in caches)  # no stage computed, not even the loss
    (rebuilt,) = (out_dir / "wandb").glob("offline-run-*")
    assert _log_is_complete(rebuilt / log_file.name)
    run = read_offline_run(rebuilt)
    for key in ("run_id", "name", "group", "job_type", "tags", "config", "tables"):
        assert run[key] == original[key], key
    assert _without_artifact_ids(run["summary"]) == _without_artifact_ids(original["summary"])
    assert run["summary"]["questions"]["sha256"] == original["summary"]["questions"]["sha256"]  # the same table
    assert [row["train/loss"] for row in run["history"] if "train/loss" in row] == pytest.approx(
        [row["train/loss"] for row in original["history"] if "train/loss" in row])
    assert len(run["history"]) == len(original["history"]) and len(run["tables"]["questions"]["data"]) == 8

    caplog.clear()
    with caplog.at_level(logging.INFO):
        rerun()  # a whole run is left alone
    assert "rebuilding" not in caplog.text
    assert list((out_dir / "wandb").glob("offline-run-*")) == [rebuilt]


def _without_artifact_ids(summary: dict) -> dict:
    """A run's summary without the random client ids W&B gives each logged table's artifact."""
    return {key: {k: v for k, v in value.items() if "artifact_path" not in k} if isinstance(value, dict) else value
            for key, value in summary.items()}
