"""scorer=majority, self-consistency (Wang et al. 2022): per question, the n completions each role drew (the samples
stage scorer=sampled and scorer=ntk share) vote; maj@k is the probability that the majority answer of k of them,
drawn without replacement, is correct, computed exactly over every k-subset (ntkeval.stats.majority: ties broken
uniformly at random, unreadable answers abstain). Every k of `scorer.k` comes from the one draw of n; the first is
the head: the cell's p_learner, p_control and delta (learner - control, with its bounded interval over questions).
Equal answers vote together ("0.5" and "1/2" as answers of a decimal question).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ntkeval.errors import UserError
from ntkeval.scorers.paired import mean, paired_entry
from ntkeval.scorers.reading import answer_groups
from ntkeval.scorers.sample_stages import EveryRoleSampled
from ntkeval.scorers.sampled import program_failures, unparsable
from ntkeval.stats.majority import maj_at_k


@dataclass
class MajorityScorer(EveryRoleSampled):
    n: int = 20                     # completions per question and role, drawn once (>= every k)
    k: list[int] = field(default_factory=lambda: [1, 5, 20])  # votes per majority; the first is the head
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    stop: list[str] | None = None   # None: the answer format's stop strings (direct: ["\n"])
    program_timeout_s: float = 5.0  # sandbox limits for program answers (pot, hybrid)
    program_memory_mb: int = 512

    def __post_init__(self):
        self._settings_checked()
        if not isinstance(self.k, (str, bytes, int)) and hasattr(self.k, "__iter__"):
            self.k = list(self.k)  # a list from the config (OmegaConf's ListConfig) or a tuple
        valid = (isinstance(self.k, list) and self.k
                 and all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= self.n for k in self.k)
                 and len(set(self.k)) == len(self.k))
        if not valid:
            raise UserError(f"scorer.k={self.k!r} is invalid; valid: a non-empty list of distinct integers in "
                            f"[1, scorer.n={self.n}], e.g. {sorted({1, min(5, self.n), self.n})} (the first is the head)")

    def identity(self) -> dict:
        return {"name": "majority", **self.sampling_identity(), "k": self.k}

    def compare(self, view) -> tuple[dict, list[dict]]:
        spec, _ = self.view_settings(view)
        drawn = self.draws(view, spec)
        kinds = [view.dataset.answer_kind(e) for e in view.examples]
        # maj[role][k]: per question
        maj = {name: {k: [float(majority_correct(q["completions"], kind, k)) for q, kind in zip(rows, kinds)]
                      for k in self.k} for name, rows in drawn.items()}
        head = self.k[0]
        row = {"test_skill": view.test_skill, "n": len(view.examples), "samples": spec.n, "k": self.k,
               "head_k": head, **{f"p_{name}": mean(maj[name][head]) for name in drawn},
               **paired_entry(maj["learner"][head], maj["control"][head], view.seed)}
        for k in self.k:
            row.update({f"maj@{k}_{name}": mean(maj[name][k]) for name in drawn})
            entry = paired_entry(maj["learner"][k], maj["control"][k], view.seed)
            row.update({f"delta@{k}": entry["delta"], f"ci_low@{k}": entry["ci_low"], f"ci_high@{k}": entry["ci_high"]})
        rows_of = drawn
        row.update({f"unparsable_{name}": unparsable(rows) for name, rows in rows_of.items()})
        row.update(program_failures(**rows_of))
        questions = []
        for i, e in enumerate(view.examples):
            q = {"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                 **{f"p_{name}": maj[name][head][i] for name in drawn},
                 "delta": maj["learner"][head][i] - maj["control"][head][i]}
            q.update({f"maj@{k}_{name}": maj[name][k][i] for k in self.k for name in ("learner", "control")})
            q.update({f"answers_{name}": [c["answer"] for c in rows_of[name][i]["completions"]]
                      for name in ("learner", "control")})
            questions.append(q)
        return row, questions


def majority_correct(completions: list[dict], kind: str, k: int):
    """maj@k of one question's completions (a Fraction): answers grouped by value, a group correct when its
    completions were judged correct."""
    groups = answer_groups([c["answer"] for c in completions], kind)
    counts = [len(g) for g in groups]
    return maj_at_k(counts, [bool(completions[g[0]]["correct"]) for g in groups], len(completions) - sum(counts), k)
