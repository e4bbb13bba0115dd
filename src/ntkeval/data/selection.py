"""Skill selectors shared by every data set: 'all', a group name (operation, format, domain) or a skill, or a list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ntkeval.errors import choices_error


def select_skills(spec: str | Iterable[str], skills: list[str], groups: Mapping[str, Iterable[str]]) -> list[str]:
    """The skills `spec` names, deduplicated and in the data set's order. `groups` maps each selector that stands for
    several skills (an operation, a format, a domain) to them; an unknown name is a UserError listing every choice."""
    items = [spec] if isinstance(spec, str) else list(spec)
    known = set(skills)
    chosen: set[str] = set()
    for item in items:
        if item == "all":
            chosen.update(skills)
        elif item in known:
            chosen.add(item)
        elif item in groups:
            chosen.update(groups[item])
        else:
            raise choices_error("skill", item, ("all", *groups, *skills))
    return [s for s in skills if s in chosen]
