"""The labels of a kernel's skills for the deep-versus-surface contrast, read from the skill groups the cells recorded
(ntkeval.data.base.SkillGroups): the deep axis (arith's operation, KhanSkill's domain) and the surface axis, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkeval.data.base import SkillGroups

EFFECTS = "; train- and test-skill effects removed"


@dataclass(frozen=True)
class Layout:
    """The labels of a kernel's skills: deep group and surface (None when the data set has no surface axis)."""
    group: np.ndarray
    surface: np.ndarray | None
    what: str
    deep_name: str = "group"            # the axes' names, for verdicts: "operation", "format", "domain"
    surface_name: str | None = None

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        return pair_masks(self.group, self.surface)

    def without(self, k: int) -> Layout:
        keep = np.arange(len(self.group)) != k
        return Layout(self.group[keep], None if self.surface is None else self.surface[keep], self.what,
                      self.deep_name, self.surface_name)


def layout_of(skills: list[str], groups: SkillGroups) -> Layout:
    """Each skill's deep group and surface from `groups` (KeyError for a skill they do not cover)."""
    deep, surface = groups.deep, groups.surface
    if surface is not None:
        return Layout(_codes(groups.labels(deep, skills)), _codes(groups.labels(surface, skills)),
                      f"same {deep}, other {surface} (A) vs same {surface}, other {deep} (B)" + EFFECTS, deep, surface)
    return Layout(_codes(groups.labels(deep, skills)), None, f"same {deep} (A) vs other {deep}s (B)" + EFFECTS, deep)


def _codes(values: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    return np.array([index[v] for v in values])


def pair_masks(group: np.ndarray, surface: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A and B as boolean n x n masks; both exclude the diagonal."""
    same_group = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(len(group), dtype=bool)
    if surface is None:
        return same_group & off_diagonal, ~same_group
    same_surface = surface[:, None] == surface[None, :]
    return same_group & ~same_surface, same_surface & ~same_group

