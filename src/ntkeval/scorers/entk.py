"""scorer=entk, the predicted kernel: the empirical neural tangent kernel of the tuning, no tuning run needed.

For train skill t, learner L (tune-skill: correct answers) and its control C (tune-base: wrong answers of the same
form), both tuned from the same seeded LoRA initialisation theta0 (B = 0, A random: train_adapter's, reproduced for
the cell's seed):

  gbar_L = gradient at theta0 of the tuning objective on L's training texts, sum_i log p(target_i | prompt_i) over
           sum_i (answer tokens of i): the tuning loss (backends/huggingface/training.py, answer tokens only) over all
           texts as one batch; gbar_C the same on C's texts
  g_q    = gradient at theta0 of log p(canonical answer + delimiter | prompt) of test question q, the very text
           scorer=exact teacher-forces (fmt.prompt(e), fmt.target(e.answer))

One SGD step of size lr (the learner's tuning lr) on the objective moves log p_q by lr <g_q, gbar> to first order,
so p_q by p_q lr <g_q, gbar>. Per question: predicted_learner = p_q lr <g_q, gbar_L>, predicted_control likewise
with gbar_C, delta = their difference (the contrast the measured tune-skill kernel reports); the row's delta is
their mean over questions with a BCa interval over questions (the values are not bounded probabilities), p_base
the mean p_q at theta0 (B = 0: the untouched model's). This is the SGD linearisation: the tuner is AdamW, whose
first step is closer to a sign step, so the scale of the prediction is not the tuned kernel's; the report compares
them by rank (Spearman), which the scale does not change.

params=lora differentiates the adapter's parameters (those of A are exactly 0 at B = 0 and kept: they add nothing
to an inner product); params=full every weight, through a seeded CountSketch of `projection` buckets (TRAK-style:
unbiased inner products, memory d + one chunk of a tensor; backends/huggingface/gradients.py). Test gradients do
not depend on the train skill and are cached per (model, data set, format, test skill, LoRA config, seed,
gradient settings); train means per learner stage key; the per-question inner products per role and test skill.

The learner and its control must offer (LoraLearner does): lora_config() (the adapter config they tune with),
settings(seed).lr, training_texts(context) ((prompt, target) pairs) and tunes_on_texts() (True when the adapter is
trained on those texts with the answer-token loss; GRPO's is not). The backend's session must offer
answer_gradients(texts, GradientSpec, mean, batch_size, desc) (HFSession does; the toy backend does not).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ntkeval.backends.base import SCORING_RULE_VERSION, GradientSpec
from ntkeval.cache import Checked
from ntkeval.errors import UserError, choices_error
from ntkeval.scorers.base import Role, Roles, Stage
from ntkeval.scorers.exact import per_question_problem
from ntkeval.stats.intervals import mean_interval

PARAMS = ("lora", "full")
DOTS = "entk-dots"             # stage kind: per-question <g_q, gbar> under one role, the scorer's cached stage
TEST_GRADIENTS = "entk-test"   # cached directory: g_q of one test skill (shared by every train skill and role)
TRAIN_MEANS = "entk-train"     # cached directory: gbar of one learner on one train skill
VERSION = 1                    # bump when what these stages compute changes
INTERFACE = ("lora_config", "settings", "training_texts", "tunes_on_texts")
# learner-key entries that shape the optimisation, not the texts or the initialisation: a train mean is shared
# across them (a learning curve's sizes, a sweep over lr)
OPTIMISER_ONLY = ("steps", "batch_size", "lr", "weight_decay")


@dataclass(frozen=True)
class _Linearised:
    """Stands in for a learner in entk's stages: the key is the learner's, but entk needs no adaptation of it, so
    its stage() is None and the dry-run plan counts no tuning (ntkeval.plan)."""
    learner: Any
    name: str

    def stage(self, context) -> None:
        return None


@dataclass
class EntkScorer:
    params: str = "lora"            # lora: the LoRA parameters; full: every weight (needs projection)
    projection: int | None = None   # null: exact inner products (params=lora only); d: CountSketch dimension
    batch_size: int = 8             # texts per forward/backward pass of a train mean; results do not depend on it

    def __post_init__(self):
        if self.params not in PARAMS:
            raise choices_error("scorer.params", self.params, PARAMS)
        if self.projection is not None and (isinstance(self.projection, bool) or not isinstance(self.projection, int)
                                            or self.projection < 1):
            raise UserError(f"scorer.projection={self.projection!r} is invalid; valid: null (exact, params=lora) or "
                            "an integer >= 1 (CountSketch dimension, e.g. 4096)")
        if self.params == "full" and self.projection is None:
            raise UserError("scorer.projection=null is invalid with scorer.params=full; valid: an integer >= 1 "
                            "(CountSketch dimension, e.g. 4096): exact full gradients hold a copy of the model "
                            "per question")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"scorer.batch_size={self.batch_size!r} is invalid; valid: an integer >= 1")
        self._reasoning_format: str | None = None

    def bind_format(self, answer_format) -> None:
        """The cell's answer format (the cell calls this first): entk differentiates the bare answer, as scorer=exact
        teacher-forces it, so validate refuses a format that writes a solution before the answer."""
        self._reasoning_format = answer_format.name if getattr(answer_format, "reasoning", False) else None

    def identity(self) -> dict:
        return {"name": "entk", "params": self.params, "projection": self.projection, "rule": SCORING_RULE_VERSION,
                "version": VERSION}

    def validate(self, learner) -> None:
        """A LoRA learner tuned on texts, with a control of the same kind; before any model loads."""
        if self._reasoning_format is not None:
            raise UserError(f"scorer=entk cannot predict format={self._reasoning_format}: it differentiates log p of "
                            "the bare answer, as scorer=exact teacher-forces it, and a reasoning format writes a "
                            "solution first; expected format=direct")
        sizes = getattr(learner, "curve_sizes", None)
        if callable(sizes) and sizes():
            raise UserError(f"learner.curve={list(sizes())} is invalid with scorer=entk: it predicts one step from the "
                            "initialisation, the same at every size; valid: [] (the report compares the prediction "
                            "with the measured kernel's own learning curve)")
        control = learner.control()
        if control is None:
            raise UserError(f"scorer=entk needs a learner with a control; learner={learner.name} has none (it is "
                            "compared with the untouched model); valid choices: tune-skill, tune-augment, tune-rft")
        for each in (learner, control):
            missing = [m for m in INTERFACE if not callable(getattr(each, m, None))]
            if missing or not each.tunes_on_texts():
                why = f"it has no {', '.join(missing)}" if missing else "its adapter is not trained on texts"
                raise UserError(f"scorer=entk predicts LoRA tuning on training texts; learner={each.name} is no such "
                                f"learner ({why}); valid choices: tune-skill, tune-augment, tune-rft")

    def stages(self, roles: Roles) -> list[Stage]:
        return [Stage(DOTS, Role(r.name, _Linearised(r.learner, r.name), r.key), {"scorer": self.identity()})
                for r in (roles.learner, roles.control)]

    # ---- gradients ---------------------------------------------------------------------------------------------
    def spec(self, learner, seed: int) -> GradientSpec:
        return GradientSpec(self.params, learner.lora_config() if self.params == "lora" else None, seed,
                            self.projection)

    def gradient_key(self, learner, seed: int) -> dict:
        """What determines a gradient besides its text: the parameters, their initialisation and the projection."""
        lora = None
        if self.params == "lora":
            lora = {k: sorted(v) if isinstance(v, (set, frozenset)) else v
                    for k, v in learner.lora_config().to_dict().items()}
        return {**self.identity(), "lora": lora, "seed": seed}

    def test_gradients(self, view, learner) -> tuple[np.ndarray, list[float]]:
        """g_q of every test question (rows) and log p_q at theta0, cached per test skill."""
        context, examples = view.context, view.examples
        parts = {"model": context.model_key, "dataset": view.dataset.identity(), "format": view.fmt.identity(),
                 **context.format_key(), "test_skill": view.test_skill, "ids": [e.id for e in examples],
                 "gradients": self.gradient_key(learner, view.seed)}
        texts = [(view.fmt.prompt(e, prefix=""), view.fmt.target(e.answer)) for e in examples]

        def build(folder: Path) -> None:
            vectors, logps = _session(view).answer_gradients(
                texts, self.spec(learner, view.seed), mean=False, batch_size=1,
                desc=f"entk gradients of {view.test_skill}")
            _save(folder, vectors, logps)

        folder = context.cache.directory(TEST_GRADIENTS, parts, build, check=_vectors_problem(len(texts)))
        return _load(folder)

    def train_mean(self, view, learner) -> np.ndarray:
        """gbar of `learner` on the cell's train skill (one vector), cached per learner stage key."""
        context = view.context
        _, adaptation = learner.stage(context)
        if isinstance(adaptation.get("learner"), dict):  # what only the optimiser uses cannot change gbar
            adaptation = {**adaptation, "learner": {k: v for k, v in adaptation["learner"].items()
                                                    if k not in OPTIMISER_ONLY}}
        parts = {"adaptation": adaptation, "gradients": self.gradient_key(learner, context.seed)}

        def build(folder: Path) -> None:
            texts = learner.training_texts(context)
            vectors, logps = _session(view).answer_gradients(
                texts, self.spec(learner, context.seed), mean=True, batch_size=self.batch_size,
                desc=f"entk mean gradient of {learner.name} on {context.train_skill}")
            _save(folder, vectors, logps)

        folder = context.cache.directory(TRAIN_MEANS, parts, build, check=_vectors_problem(1, logps=None))
        return _load(folder)[0][0]

    def dots(self, view, learner) -> list[dict]:
        tests, logps = self.test_gradients(view, learner)
        mean = self.train_mean(view, learner)
        if tests.shape[1] != mean.shape[0]:
            raise RuntimeError(f"entk: test gradients of size {tests.shape[1]} against a train mean of size "
                               f"{mean.shape[0]}; delete the {TEST_GRADIENTS} and {TRAIN_MEANS} cache entries")
        return [{"id": e.id, "logp": lp, "dot": float(d)} for e, lp, d in zip(view.examples, logps, tests @ mean)]

    # ---- the kernel entry ---------------------------------------------------------------------------------------
    def compare(self, view) -> tuple[dict, list[dict]]:
        roles = view.roles
        if not roles.has_control:
            self.validate(roles.learner.learner)
        _session(view)
        found = {}
        for stage in self.stages(roles):
            learner = stage.role.learner.learner
            found[stage.role.name] = view.record(stage, Checked(lambda learner=learner: self.dots(view, learner),
                                                                dots_problem(view.examples)))
        lr_l = roles.learner.learner.settings(view.seed).lr
        lr_c = roles.control.learner.settings(view.seed).lr
        return predicted_entry(view, found[roles.learner.name], found[roles.control.name], lr_l, lr_c)


def predicted_entry(view, learner: list[dict], control: list[dict], lr_learner: float,
                    lr_control: float) -> tuple[dict, list[dict]]:
    """The kernel row and per-question rows from the inner products: predicted = p lr dot per role."""
    questions = []
    for e, lq, cq in zip(view.examples, learner, control):
        p = math.exp(lq["logp"])
        pl, pc = p * lr_learner * lq["dot"], p * lr_control * cq["dot"]
        questions.append({"id": e.id, "test_skill": view.test_skill, "question": e.question, "answer": e.answer,
                          "logp_base": lq["logp"], "p_base": p, "dot_learner": lq["dot"], "dot_control": cq["dot"],
                          "predicted_learner": pl, "predicted_control": pc, "delta": pl - pc,
                          "delta_logp": lr_learner * lq["dot"] - lr_control * cq["dot"]})
    n = len(questions)
    mean = lambda key: sum(q[key] for q in questions) / n
    deltas = [q["delta"] for q in questions]
    ci = mean_interval(deltas, seed=view.seed, method="bca", bounds=None)
    se = float(np.std(deltas, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    p_base = mean("p_base")
    row = {"test_skill": view.test_skill, "n": n, "p_learner": p_base + mean("predicted_learner"),
           "p_control": p_base + mean("predicted_control"), "p_base": p_base, "delta": ci.delta, "se": se,
           "ci_low": ci.ci_low, "ci_high": ci.ci_high, "predicted_learner": mean("predicted_learner"),
           "predicted_control": mean("predicted_control"), "lr": lr_learner,
           # the same step's change of log p, before the factor p: the linearisation in the space it is exact in
           # (a question the untouched model rarely gets right moves little in p however strongly it is pushed)
           "delta_logp": mean("delta_logp")}
    return row, questions


def _session(view):
    session = view.context.session
    if not callable(getattr(session, "answer_gradients", None)):
        raise UserError(f"scorer=entk needs a backend whose session computes gradients (answer_gradients); "
                        f"{type(session).__name__} does not; valid: a Hugging Face model (smollm2, tiny, a hub model)")
    return session


def _save(folder: Path, vectors: np.ndarray, logps: list[float]) -> None:
    np.save(folder / "gradients.npy", np.ascontiguousarray(vectors, dtype=np.float64))
    (folder / "logps.json").write_text(json.dumps(logps))


def _load(folder: Path) -> tuple[np.ndarray, list[float]]:
    return np.load(folder / "gradients.npy"), json.loads((folder / "logps.json").read_text())


def _vectors_problem(rows: int, logps: int | None = -1):
    """A gradients directory must hold `rows` finite vectors (and, unless logps is None, one log p <= 0 per row)."""
    def problem(folder: Path) -> str | None:
        try:
            vectors, values = _load(folder)
        except (OSError, ValueError) as error:
            return f"unreadable gradients ({type(error).__name__})"
        if vectors.ndim != 2 or vectors.shape[0] != rows or not np.isfinite(vectors).all():
            return f"expected {rows} finite gradient vectors, found shape {vectors.shape}"
        if logps is not None and (len(values) != rows or not all(_logp(v) for v in values)):
            return f"expected {rows} log-probabilities"
        return None

    return problem


def dots_problem(examples):
    """A cached entk-dots record: per question, in order, its id, a log p <= 0 and a finite inner product."""
    def row_problem(i: int, row: dict) -> str | None:
        if not _logp(row.get("logp")) or not _finite(row.get("dot")):
            return f"row {i} lacks a log p <= 0 or a finite inner product"
        return None

    return per_question_problem(examples, row_problem)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _logp(value) -> bool:
    return _finite(value) and value <= 0
