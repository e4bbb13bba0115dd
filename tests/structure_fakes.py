"""Skill groups read off the fake skill names of the structure tests, as a data set would declare them: "o0/f0" as
an arith-like grid (operation deep, format surface), any other "d0/s1" as domains with no surface axis."""

from ntkeval.data.base import SkillGroups, groups_by_axis
from ntkeval.report.structure import groups_key


def by_name(skills, kind):
    """kind "arith": (operation, format) from "op/format"; anything else: (domain,) from "domain/name"."""
    if kind == "arith":
        return SkillGroups(("operation", "format"), "operation", "format", groups_by_axis(
            skills, {"operation": lambda s: s.split("/")[0], "format": lambda s: s.split("/")[1]}))
    return SkillGroups(("domain",), "domain", None, groups_by_axis(skills, {"domain": lambda s: s.split("/")[0]}))


def groups_of_rows(rows):
    """What the report passes structure_stats: per kernel, the groups of every skill its rows name."""
    skills, kinds = {}, {}
    for r in rows:
        key = groups_key(r)
        skills.setdefault(key, {}).update(dict.fromkeys([r["train_skill"], r["test_skill"]]))
        kinds[key] = r["dataset"]
    return {key: by_name(list(names), kinds[key]) for key, names in skills.items()}
