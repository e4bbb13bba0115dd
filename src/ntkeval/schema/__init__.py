"""The config schema: the type and range of every value a user can set, checked on the composed config in
milliseconds, before anything heavy is imported (ntkeval.preflight runs it first).

  nodes.py   one dataclass per config node (a model class, a learner class, ..., the top level)
  rules.py   knob(...) to declare a field's range, and the Checker that walks a config against the dataclasses
  host.py    what this machine offers: CUDA GPUs and local paths, found without importing torch
  relations.py  rules between nodes (scorer and learner, learner and data set), once each node is valid
  user_classes.py  a `_target_` none of nodes.py declares (a user's own class): imported, its keys checked against
                its constructor, so a new learner, scorer or data set needs no entry here
"""

from __future__ import annotations

from typing import Any

from ntkeval.schema.nodes import Config
from ntkeval.schema.relations import relation_problems
from ntkeval.schema.rules import Checker


def check_config(resolved: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """Every problem of one job's config (resolved values, and the same config unresolved so that a problem in a
    value like `${tuning.lr}` is named after the key the user set), one line each; [] when it is valid."""
    checker = Checker()
    checker.node(resolved, raw, Config, "")
    return checker.problems or relation_problems(resolved)


__all__ = ["Config", "check_config"]
