"""The skill groups of each kernel in a sweep, as its cells recorded them in result.json (`skill_groups`).

Results written before cells recorded them are read by rebuilding the data set from the result's own config
(`config["dataset"]`, a Hydra node) and asking it; when that fails too (a jsonl file that moved, a class that is
gone) the kernel has no groups and the report says so in one warning line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from ntkeval.data.base import SkillGroups
from ntkeval.report.structure import groups_key


def _rebuilt(dataset_config: dict) -> SkillGroups:
    """The groups of the data set a result's config describes (the report is an edge: it may instantiate)."""
    from hydra.utils import instantiate

    return instantiate(dataset_config).skill_groups()


def result_groups(result: dict, rebuild: Callable[[dict], SkillGroups] = _rebuilt,
                  cache: dict[str, SkillGroups | Exception] | None = None) -> SkillGroups | Exception:
    """The groups of one result's skills: recorded, else rebuilt from its config; the exception when neither works."""
    try:
        if result.get("skill_groups") is not None:
            return SkillGroups.from_json(result["skill_groups"])
        dataset = (result.get("config") or {}).get("dataset")
        if not isinstance(dataset, dict):
            raise ValueError("the result records neither skill_groups nor its dataset config")
        key = json.dumps(dataset, sort_keys=True, default=str)
        cache = {} if cache is None else cache
        if key not in cache:
            try:
                cache[key] = rebuild(dataset)
            except Exception as error:  # any failure of a user's data set class means the same: no groups
                cache[key] = error
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]
    except Exception as error:
        return error


def kernel_groups(results: list[dict], warn: Callable[[str], None] | None = None,
                  rebuild: Callable[[dict], SkillGroups] = _rebuilt) -> dict[tuple, SkillGroups]:
    """Per kernel (structure.groups_key of its cells) the union of its done cells' groups; one warning line per
    kernel whose cells' groups cannot be read or disagree, which is then left without groups."""
    warn = warn or (lambda line: print(f"ntkeval-report: warning: {line}", file=sys.stderr))
    cache: dict[str, SkillGroups | Exception] = {}
    found: dict[tuple, SkillGroups] = {}
    broken: dict[tuple, str] = {}
    for result in results:
        if result.get("status") != "done":
            continue
        key = groups_key(result.get("cell") or {})
        groups = result_groups(result, rebuild, cache)
        if key in broken:
            continue
        if isinstance(groups, Exception):
            broken[key] = f"{result.get('result_path', '?')}: {' '.join(str(groups).split()) or type(groups).__name__}"
            continue
        try:
            found[key] = found[key].merged(groups) if key in found else groups
        except ValueError as error:
            broken[key] = f"{result.get('result_path', '?')}: {error}"
    for key, why in broken.items():
        found.pop(key, None)
        name = " ".join(str(v) for v in key if v is not None)
        warn(f"no skill groups for kernel {name} ({why}); treated as ungrouped: deep versus surface not compared")
    return found
