"""A cache that verifies: every corruption of a cached stage (truncated, garbage, wrong shape, edited, unfinished,
written by an older ntkeval) gives one warning naming the file and a rerun with exactly the numbers of a clean run;
leftovers of killed jobs are removed once old enough, and never while a live writer holds them."""

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache, stable_hash
from ntkeval.cell import Cell, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.scorers.sampled import SampledScorer
from ntkeval.tracking.base import NullTracker

TESTS = ["add/question", "mul/symbol"]
HOUR = 3600


def make_cell(out: Path, cache: Path, learner=None, scorer=None) -> Cell:
    learner = learner or LoraLearner(name="tune-skill", answers="correct", steps=3, batch_size=4, lr=1e-2)
    return Cell(model=TinyModel(name="tiny", arch="llama"), learner=learner,
                dataset=ArithDataset(seed=0, n_train=8, n_test=4), train_skill="add/question", test_skills=TESTS,
                scorer=scorer or ExactScorer(batch_size=4), fmt=PromptFormat(), seed=0, cache=StageCache(cache),
                out_dir=out)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run of a tuned cell (two adapters, scores under three roles): its cache and its kernel rows."""
    root = tmp_path_factory.mktemp("clean")
    result = run_cell(make_cell(root / "out", root / "cache"), NullTracker())
    return root / "cache", result["tests"]


def rerun(tmp_path, cache: Path, caplog, **cell) -> tuple[dict, list[str]]:
    """Run the cell again on `cache`; its result and the warnings the cache gave."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ntkeval"):
        result = run_cell(make_cell(tmp_path / "again", cache, **cell), NullTracker())
    return result, [r.getMessage() for r in caplog.records if r.name.startswith("ntkeval.cache")]


def copy_of(clean_cache: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clean_cache, tmp_path / "cache"))


def entry(cache: Path, kind: str, answers: str | None, test_skill: str | None = None) -> Path:
    """The file (record) or folder (directory) of the entry whose learner tuned with `answers` (None: base)."""
    for path in sorted((cache / kind).iterdir()):
        if path.name.startswith(".") or path.suffix == ".lock":
            continue
        key = json.loads((path / "key.json" if path.is_dir() else path).read_text())
        key = key.get("key", key)
        adaptation = key.get("adaptation", key.get("learner"))
        if (adaptation or {}).get("answers") == answers and key.get("test_skill", test_skill) == test_skill:
            return path
    raise AssertionError(f"no {kind} entry for answers={answers} test_skill={test_skill}")


def reseal(path: Path, value) -> None:
    """Store `value` with a valid checksum: a record that parses and passes its checksum (as an older layout would)."""
    stored = json.loads(path.read_text())
    stored["value"] = value
    stored["sha256"] = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps(stored))


def edit_record(path: Path, edit) -> None:
    stored = json.loads(path.read_text())
    edit(stored)
    path.write_text(json.dumps(stored))


def drop_scores(cache: Path) -> None:
    """Clear the scores, so the rerun must load the adapters again (a cell never opens an adapter it does not need)."""
    for path in (cache / "scores").glob("*.json"):
        path.unlink()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def shift_logp(stored: dict) -> None:
    """A plausible edit (p and logp agree) that would move the learner's mean p by 0.2 if it were used."""
    row = stored["value"][0]
    row["p"] = min(1.0, row["p"] + 0.8)
    row["logp"] = math.log(row["p"])


LEARNER_SCORES = lambda cache: entry(cache, "scores", "correct", TESTS[0])  # noqa: E731
SKILL_ADAPTER = lambda cache: entry(cache, "adapters", "correct")  # noqa: E731
CORRUPTIONS = {  # name: (corrupt the copied cache, the file the warning must name, what it must say, kinds rebuilt)
    "truncated record": (lambda c: truncate(LEARNER_SCORES(c)), LEARNER_SCORES, "cannot be parsed", {"scores"}),
    "garbage bytes": (lambda c: LEARNER_SCORES(c).write_bytes(b"\x89\xff\x00garbage\xfe" * 50), LEARNER_SCORES,
                      "cannot be parsed", {"scores"}),
    "wrong shape (valid checksum)": (
        lambda c: reseal(LEARNER_SCORES(c), [{k: v for k, v in r.items() if k != "greedy"}
                                             for r in json.loads(LEARNER_SCORES(c).read_text())["value"]]),
        LEARNER_SCORES, "does not hold what this stage expects", {"scores"}),
    "one question missing (valid checksum)": (
        lambda c: reseal(LEARNER_SCORES(c), json.loads(LEARNER_SCORES(c).read_text())["value"][1:]),
        LEARNER_SCORES, "expected a list of 4 rows", {"scores"}),
    "edited value": (lambda c: edit_record(LEARNER_SCORES(c), shift_logp), LEARNER_SCORES, "fails its checksum",
                     {"scores"}),
    "entry of the previous code (no checksum)": (
        lambda c: edit_record(LEARNER_SCORES(c), lambda s: [s.pop("sha256"), s.pop("format")]), LEARNER_SCORES,
        "has no checksum", {"scores"}),
    "missing .complete marker": (
        lambda c: [drop_scores(c), (SKILL_ADAPTER(c) / ".complete").unlink()], SKILL_ADAPTER,
        "no .complete marker", {"scores", "adapters"}),
    "truncated adapter safetensors": (
        lambda c: [drop_scores(c), truncate(next(SKILL_ADAPTER(c).rglob("adapter_model.safetensors")))],
        SKILL_ADAPTER, "adapter_model.safetensors of", {"scores", "adapters"}),
    "adapter of the previous code (no manifest)": (
        lambda c: [drop_scores(c), (SKILL_ADAPTER(c) / "manifest.json").unlink()], SKILL_ADAPTER,
        "no manifest.json", {"scores", "adapters"}),
    "garbage loss.json in the adapter": (
        lambda c: [drop_scores(c), (SKILL_ADAPTER(c) / "loss.json").write_text("[0.5, oops")], SKILL_ADAPTER,
        "loss.json", {"scores", "adapters"}),
    "garbage loss record (adapter-losses)": (
        lambda c: entry(c, "adapter-losses", "correct").write_text("{not json"),
        lambda c: entry(c, "adapter-losses", "correct"), "cannot be parsed", {"adapter-losses"}),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupted_entry_gives_one_warning_naming_it_and_the_numbers_of_a_clean_run(clean, tmp_path, caplog, name):
    clean_cache, clean_rows = clean
    corrupt, named, says, rebuilt = CORRUPTIONS[name]
    cache = copy_of(clean_cache, tmp_path)
    target = named(cache)
    corrupt(cache)
    result, warnings = rerun(tmp_path, cache, caplog)
    assert result["status"] == "done"
    assert result["tests"] == clean_rows  # never a silently wrong number
    assert len(warnings) == 1, warnings
    assert str(target) in warnings[0] and says in warnings[0], warnings[0]
    assert set(result["cache"]["misses"]) == rebuilt
    assert result["cache"]["misses"].get("adapters", 0) <= 1  # only the damaged adapter is retrained
    _, warnings = rerun(tmp_path, cache, caplog)  # the rebuilt entry is sound: no warning the next time
    assert warnings == []


def test_a_clean_rerun_hits_every_stage_without_a_warning(clean, tmp_path, caplog):
    cache = copy_of(clean[0], tmp_path)
    result, warnings = rerun(tmp_path, cache, caplog)
    assert warnings == [] and result["cache"]["misses"] == {} and result["tests"] == clean[1]
    assert all(make_cell(tmp_path, cache).cache.has("scores", json.loads(p.read_text())["key"])
               for p in (cache / "scores").glob("*.json"))


def test_a_damaged_loss_record_is_restored_from_the_adapter_when_only_logging_needs_it(clean, tmp_path, caplog):
    cache = copy_of(clean[0], tmp_path)
    losses = entry(cache, "adapter-losses", "correct")
    expected = json.loads(losses.read_text())["value"]
    losses.write_text("garbage")
    cell = make_cell(tmp_path, cache)
    with caplog.at_level(logging.WARNING, logger="ntkeval"):
        assert cell.learner.recorded_loss(cell.context()) == expected
    assert sum(str(losses) in r.getMessage() for r in caplog.records) == 1
    assert json.loads(losses.read_text())["value"] == expected


def test_samples_of_the_wrong_size_are_drawn_again(tmp_path, caplog):
    """A samples record that parses and passes its checksum but holds fewer completions than scorer.n."""
    icl = lambda: InContextLearner(name="icl-skill", demos=2, source="skill")  # noqa: E731
    scorer = lambda: SampledScorer(n=3, max_new_tokens=2)  # noqa: E731
    first = run_cell(make_cell(tmp_path / "a", tmp_path / "cache", icl(), scorer()), NullTracker())["tests"]
    (path, *_) = sorted((tmp_path / "cache" / "samples").glob("*.json"))
    reseal(path, [{**q, "completions": q["completions"][:2]} for q in json.loads(path.read_text())["value"]])
    result, warnings = rerun(tmp_path, tmp_path / "cache", caplog, learner=icl(), scorer=scorer())
    assert result["tests"] == first
    assert len(warnings) == 1 and str(path) in warnings[0] and "does not hold 3 completions" in warnings[0]


def test_racing_readers_of_a_damaged_record_compute_it_once_and_warn_once(tmp_path, caplog):
    StageCache(tmp_path).record("s", {"k": 0}, lambda: [1, 2])
    (path,) = (tmp_path / "s").glob("*.json")
    truncate(path)
    calls, results, gate = [], [], threading.Event()

    def slow():
        calls.append(1)
        gate.wait(0.5)
        return [1, 2]

    with caplog.at_level(logging.WARNING, logger="ntkeval"):
        threads = [threading.Thread(target=lambda: results.append(StageCache(tmp_path).record("s", {"k": 0}, slow)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join()
    assert results == [[1, 2]] * 4 and len(calls) == 1
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1


def test_a_directory_file_edited_in_place_fails_its_checksum(tmp_path, caplog):
    """Same size, other bytes: only the sha256 in the manifest can tell (has() checks sizes only, and never warns)."""
    cache, built = StageCache(tmp_path), []
    build = lambda tmp: built.append((tmp / "weights").write_text("ok"))  # noqa: E731
    path = cache.directory("adapters", {"a": 1}, build)
    (path / "weights").write_text("no")
    with caplog.at_level(logging.WARNING, logger="ntkeval"):
        assert cache.has("adapters", {"a": 1})
        assert caplog.records == []
        assert cache.directory("adapters", {"a": 1}, build) == path
    assert (path / "weights").read_text() == "ok" and len(built) == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"cache entry {path} has weights failing its checksum (edited or damaged); rebuilding it"]


def test_a_computed_value_that_fails_its_own_check_is_an_error_and_not_stored(tmp_path):
    cache = StageCache(tmp_path)
    with pytest.raises(RuntimeError, match="fails its own check"):
        cache.record("s", {"k": 0}, lambda: [float("nan")], check=lambda v: "nan" if v != v or v[0] != v[0] else None)
    assert not list((tmp_path / "s").glob("*.json"))


def age(path: Path, hours: float) -> None:
    then = time.time() - hours * HOUR
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (then, then))


def orphans(root: Path) -> dict[str, Path]:
    key = stable_hash({"x": 1})
    (root / "adapters").mkdir(parents=True)
    (root / "scores").mkdir()
    made = {"dir": root / "adapters" / f".{key}.k1ll3d", "file": root / "scores" / f".{key}.json.x9z",
            "checkpoint": root / "checkpoints" / key}
    made["dir"].mkdir()
    (made["dir"] / "adapter_model.safetensors").write_bytes(b"half")
    made["file"].write_text('{"form')
    made["checkpoint"].mkdir(parents=True)
    (made["checkpoint"] / "state.pt").write_bytes(b"state")
    return made


def test_orphans_older_than_the_age_are_removed_younger_ones_kept(tmp_path, caplog):
    old, young = orphans(tmp_path / "old"), orphans(tmp_path / "young")
    for path in old.values():
        age(path, 25)
    for path in young.values():
        age(path, 23)
    with caplog.at_level(logging.INFO, logger="ntkeval"):
        StageCache(tmp_path / "old", orphan_hours=24).record("scores", {"y": 2}, lambda: 1)
        StageCache(tmp_path / "young", orphan_hours=24).record("scores", {"y": 2}, lambda: 1)
    assert not any(p.exists() for p in old.values())
    assert all(p.exists() for p in young.values())
    removals = [r.getMessage() for r in caplog.records if "left by a killed job" in r.getMessage()]
    assert len(removals) == 3 and all(any(str(p) in m for m in removals) for p in old.values())


def test_an_old_orphan_whose_lock_a_live_writer_holds_is_kept(tmp_path):
    """A build that runs longer than the age (its temporary dir untouched since it began) is still alive."""
    made = orphans(tmp_path)
    for path in made.values():
        age(path, 48)
    lock = FileLock(str(tmp_path / "adapters" / f"{stable_hash({'x': 1})}.lock"))
    with lock:
        StageCache(tmp_path, orphan_hours=24).record("scores", {"y": 2}, lambda: 1)
    assert made["dir"].exists() and made["checkpoint"].exists()  # the writer's lock guards its dir and checkpoint
    assert not made["file"].exists()  # a different entry's lock (scores/<key>.lock) was free


@pytest.mark.parametrize("hours", [-1, "soon", True])
def test_an_invalid_orphan_age_is_a_user_error(hours):
    with pytest.raises(UserError, match="cache_orphan_hours"):
        StageCache("unused", orphan_hours=hours)


def test_compute_seconds_count_each_kind_once_and_lock_wait_counts_only_waiting(tmp_path, monkeypatch):
    """compute_s holds each kind's own time (an entry built inside another is not counted twice); lock_wait_s is
    time spent waiting for another holder of an entry's lock, 0 when nobody held it."""
    from filelock import FileLock

    from ntkeval import cache as cache_module

    clock = iter(float(t) for t in range(0, 1000))
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: next(clock))
    cache = StageCache(tmp_path)

    def outer():
        cache.record("inner", {"k": 1}, lambda: 1)   # inner: computed in one tick of the fake clock
        return 2

    cache.record("outer", {"k": 2}, outer)
    assert cache.compute_s == {"inner": 1.0, "outer": 2.0}  # outer: 3 ticks in all, 1 of them inner's
    assert cache.lock_wait_s == 0.0
    monkeypatch.undo()
    (tmp_path / "third").mkdir()
    taken = threading.Event()

    def hold_a_while():  # another holder (a thread: filelock refuses a second lock in the same thread)
        with FileLock(str(tmp_path / "third" / f"{stable_hash({'k': 3})}.lock")):
            taken.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold_a_while)
    holder.start()
    taken.wait()
    assert cache.record("third", {"k": 3}, lambda: 3) == 3
    holder.join()
    assert 0.25 < cache.lock_wait_s < 5
