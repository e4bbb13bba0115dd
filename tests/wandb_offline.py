"""Read an offline W&B run back from disk (wandb 0.31 ships the protobuf but no Python reader for its log): what the
tests check a cell mirrored. Use it as `from wandb_offline import read_offline_run`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ntkeval.tracking.wandb_tracker import _transaction_records


def read_offline_run(run_dir: str | Path) -> dict:
    """What an offline run logged: run_id, project, name, group, job_type, tags, config, summary, history, tables.

    `run_dir` is an `offline-run-*` directory (or its run-*.wandb file). Summary keys starting with "_" (W&B's own
    bookkeeping) are dropped; history rows keep "_step". `tables` maps each logged table key to its columns and data.
    It reads what is on disk: call it after `WandbTracker.finish()` has returned, which waits until the log is complete.
    """
    from wandb.proto import wandb_internal_pb2  # wandb 0.31 ships the protobuf but no Python reader for the log

    path = Path(run_dir)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"expected one run-*.wandb file in {path}, found {len(files)}")
        path = files[0]
    run: dict[str, Any] = {"config": {}, "summary": {}, "history": []}
    for data in _transaction_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(run_id=r.run_id, project=r.project, entity=r.entity, name=r.display_name, group=r.run_group,
                       job_type=r.job_type, tags=list(r.tags))
            _apply_items(run["config"], r.config.update, r.config.remove)
        elif kind == "config":
            _apply_items(run["config"], record.config.update, record.config.remove)
        elif kind == "summary":
            _apply_items(run["summary"], record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_items(row, record.history.item, [])
            run["history"].append(row)
    run["config"].pop("_wandb", None)
    run["summary"] = {k: v for k, v in run["summary"].items() if not k.startswith("_")}
    run["tables"] = {key: _read_table(path.parent / "files" / value["path"]) for key, value in run["summary"].items()
                     if isinstance(value, dict) and value.get("_type") == "table-file"}
    return run


def _apply_items(target: dict, updates: Any, removes: Any) -> None:
    """Apply W&B config/summary/history items (a flat `key` or a `nested_key` path, JSON values) to a dict."""
    for item in updates:
        *parents, last = list(item.nested_key) or [item.key]
        node = target
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = json.loads(item.value_json)
    for item in removes:
        *parents, last = list(item.nested_key) or [item.key]
        node = target
        for key in parents:
            node = node.get(key, {})
        node.pop(last, None)


def _read_table(path: Path) -> dict:
    table = json.loads(path.read_text())
    return {"columns": table["columns"], "data": table["data"]}
