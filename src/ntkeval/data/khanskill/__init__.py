"""KhanSkill: our own bank of school-math skills in the style of Khan Academy exercises (the original is not public).

    from ntkeval.data.khanskill import KhanSkillDataset
    KhanSkillDataset(seed=0).domains()   # ["whole-numbers", "place-value", ...]
"""

from ntkeval.data.khanskill.dataset import KhanSkillDataset, SkillInfo

__all__ = ["KhanSkillDataset", "SkillInfo"]
