"""Rules between two config nodes (the scorer and the learner or the answer format, the learner and the data set), checked with the
schema so that they too fail in milliseconds instead of after the full build has imported torch.

They read the same settings the classes read: a learner without a control is one whose demonstrations come from
all skills (icl-standard) or whose tuning uses random answers (tune-base); an in-context learner drawing from its
train skill has at most dataset.n_train demonstrations to choose from.
"""

from __future__ import annotations

from typing import Any

_ICL = "ntkeval.learners.icl.InContextLearner"
_LORA = "ntkeval.learners.lora.LoraLearner"
# learner target -> (setting, the value that makes it a control: a learner with its own control otherwise)
_CONTROL_SETTING = {
    "ntkeval.learners.augment.AugmentedLearner": ("answers", "random"),
    "ntkeval.learners.rft.RejectionSampledLearner": ("paths", "incorrect"),
    "ntkeval.learners.rl.RlLearner": ("reward", ["format"]),
}
_OPRO, _OPRO_START = "ntkeval.learners.opro.OproLearner", "ntkeval.learners.opro.StartInstruction"
_ENTK = "ntkeval.scorers.entk.EntkScorer"
_NEEDS_CONTROL = {"ntkeval.scorers.ntk.NtkScorer": "ntk", _ENTK: "entk"}
# learners whose adaptation is not LoRA tuning on texts: the predicted kernel (scorer=entk) has nothing to linearise
_NOT_TUNED_ON_TEXTS = (_ICL, "ntkeval.learners.rl.RlLearner", "ntkeval.learners.opro.OproLearner",
                       "ntkeval.learners.opro.StartInstruction")
_EXACT = "ntkeval.scorers.exact.ExactScorer"
_DIRECT = "ntkeval.formats.direct.DirectFormat"
REASONING_SCORERS = "sampled, ntk, majority, verify, process"  # as ntkeval.formats.writing says (no import: no torch)


def has_control(learner: dict[str, Any]) -> bool | None:
    """Whether the learner is compared with a control of its own (None: a learner this module does not know)."""
    target = learner.get("_target_")
    if target == _ICL:
        return learner.get("source") != "all"
    if target == _LORA:
        return learner.get("answers") != "random"
    if target in _CONTROL_SETTING:
        setting, control_value = _CONTROL_SETTING[target]
        return learner.get(setting) != control_value
    if target in (_OPRO, _OPRO_START):
        return target == _OPRO
    return None


def relation_problems(config: dict[str, Any]) -> list[str]:
    """One line per violated relation of one job's resolved config (its nodes already type-checked)."""
    learner, scorer, dataset, answer_format = (config.get(k) or {} for k in ("learner", "scorer", "dataset", "format"))
    problems = []
    if scorer.get("_target_") == _EXACT and answer_format.get("_target_", _DIRECT) != _DIRECT:
        name = answer_format["_target_"].rpartition(".")[2].removesuffix("Format").lower()
        problems.append(f"scorer=exact cannot score format={name}: it teacher-forces the bare answer, and a "
                        f"reasoning format writes a solution first; expected a scorer that samples "
                        f"({REASONING_SCORERS}), or format=direct")
    scorer_name = _NEEDS_CONTROL.get(scorer.get("_target_"))
    if scorer.get("_target_") == _ENTK and learner.get("_target_") in _NOT_TUNED_ON_TEXTS:
        problems.append(f"scorer=entk predicts LoRA tuning on training texts; learner={learner.get('name')} is no "
                        "such learner; valid choices: tune-skill, tune-augment, tune-rft")
    elif scorer_name and has_control(learner) is False:
        what, valid = (("to sample from", "icl-skill, tune-skill") if scorer_name == "ntk" else
                       ("to predict against", "tune-skill, tune-augment, tune-rft"))
        problems.append(f"learner={learner.get('name')} has no control for scorer={scorer_name} {what} (it "
                        f"is compared with the untouched model); expected a learner with a control ({valid}), or "
                        "scorer=exact / scorer=sampled")
    demos, n_train = learner.get("demos"), dataset.get("n_train")
    if (learner.get("_target_") == _ICL and learner.get("source") == "skill" and isinstance(demos, int)
            and isinstance(n_train, int) and demos > n_train):
        problems.append(f"learner.demos={demos} is invalid; expected at most dataset.n_train={n_train} (the train "
                        "questions of one skill the demonstrations are drawn from)")
    return problems
