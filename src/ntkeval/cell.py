"""One cell of a sweep, top to bottom: adapt a model to one train skill, let the scorer compare the learner with its
control on every test skill, and write the kernel row (result.json + questions.jsonl) and its W&B mirror."""

from __future__ import annotations

import json
import logging
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ntkeval
from ntkeval.backends.base import ModelLoader, ModelSession
from ntkeval.backends.session_pool import shared_session
from ntkeval.cache import StageCache, atomic_write_text, stable_hash
from ntkeval.data.base import DataSet
from ntkeval.formats.base import AnswerFormat
from ntkeval.formats.direct import DirectFormat
from ntkeval.learners.base import Adaptation, AdaptationRecord, AdaptContext, Learner
from ntkeval.learning_curve import curve_sizes, curve_unit, mirror_curve, sized_cell
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.base import Role, Roles, Scorer, Stage

log = logging.getLogger(__name__)


@dataclass
class Cell:
    model: ModelLoader    # from conf/model
    learner: Learner      # from conf/learner
    dataset: DataSet      # from conf/dataset
    train_skill: str
    test_skills: list[str]
    scorer: Scorer        # from conf/scorer
    fmt: PromptFormat
    seed: int
    cache: StageCache
    out_dir: Path
    device: str = "cpu"
    config: dict = field(default_factory=dict)  # the resolved config, recorded with the results
    format: AnswerFormat = field(default_factory=DirectFormat)  # from conf/format: how answers are written and read
    test_dataset: DataSet | None = None  # pair.test_dataset: test skills from another data set (None: `dataset`)

    def __post_init__(self):
        self.learner.bind_model(self.model)  # a learner's key must hold the model defaults it adapts with
        # every prompt (demonstrations, tuning texts, scoring, the untouched model's) opens with the format's line
        self.fmt = self.fmt.with_instruction(self.format.instruction())
        bind = getattr(self.scorer, "bind_format", None)  # a scorer that samples stops where the format ends
        if callable(bind):
            bind(self.format)  # before identity() and stages(), so both hold the stop strings really used

    @property
    def tests_from(self) -> DataSet:
        """The data set the test skills and their questions come from: the train data set unless pair.test_dataset
        names another (a cross-data-set cell: train on arith add, test on khanskill's whole-number skills)."""
        return self.test_dataset if self.test_dataset is not None else self.dataset

    def test_dataset_key(self) -> dict:
        """The test data set's part of the cell's keys: nothing when it is the train data set (today's keys)."""
        return {"test_dataset": self.test_dataset.identity()} if self.test_dataset is not None else {}

    def format_key(self) -> dict:
        """The answer format's part of every key: nothing for the default direct format, so today's keys hold."""
        identity = self.format.identity()
        return {"answer_format": identity} if identity else {}

    def model_key(self) -> dict:
        """The model's identity as loaded on this device (the loader's key: bf16 on CPU loads fp32)."""
        return self.model.key(self.device)

    def identity(self) -> dict:
        """What a result row carries: the grid coordinates plus seed, scorer (and its head estimate) and config_id."""
        control = self.learner.control()
        scorer = self.scorer.identity()
        return {"model": self.model.name, "learner": self.learner.name,
                "control": control.name if control else "base", "dataset": self.dataset.name,
                "test_dataset": self.tests_from.name,
                "format": self.format.name,
                "train_skill": self.train_skill, "seed": self.seed, "scorer": scorer["name"],
                "estimate": (scorer.get("estimates") or [None])[0], "config_id": self.config_id()}

    def config_id(self) -> str:
        """A short hash of every result-affecting setting except the grid coordinates (model and learner names,
        train and test skills) and the seed, which are columns of their own: cells of one configuration share it
        across train skills and seeds, so the report can pool seeds and never merge different configurations."""
        adaptation = {k: v for k, v in self.learner.key(self.train_skill, self.seed).items()
                      if k not in ("train_skill", "seed")}
        tests = {"test_dataset": self._seedless(self.test_dataset.identity())} if self.test_dataset is not None else {}
        return stable_hash({"model": self.model_key(), "dataset": self._seedless(self.dataset.identity()),
                            "learner": adaptation, "format": self.fmt.identity(), **self.format_key(),
                            "scorer": self.scorer.identity(), **tests}, length=10)

    def _seedless(self, identity: dict) -> dict:
        """A data set's identity for config_id: its seed, when it is the cell's (the default ${seed}), written as
        "=seed", so the same configuration under every seed shares one config_id and the report pools the seeds."""
        identity = dict(identity)
        if identity.get("seed") == self.seed:
            identity["seed"] = "=seed"
        return identity

    def cell_id(self) -> str:
        """Derived from everything that determines the cell's numbers: rerunning a cell finds the same id."""
        return stable_hash({"model": self.model_key(), "dataset": self.dataset.identity(),
                            "learner": self.learner.key(self.train_skill, self.seed), "tests": self.test_skills,
                            "format": self.fmt.identity(), **self.format_key(), "scorer": self.scorer.identity(),
                            "seed": self.seed, **self.test_dataset_key(), **self.curve_key()})

    def curve_key(self) -> dict:
        """The learning curve's part of the cell id (not of config_id: the main kernel does not depend on it)."""
        sizes = getattr(self.learner, "curve_sizes", None)
        return {"curve": list(sizes())} if callable(sizes) and sizes() else {}

    def context(self, session: ModelSession | None = None) -> AdaptContext:
        return AdaptContext(dataset=self.dataset, train_skill=self.train_skill, seed=self.seed, fmt=self.fmt,
                            cache=self.cache, model_key=self.model_key(), session=session, format=self.format)

    def stage_parts(self, stage: Stage, test_skill: str) -> dict:
        """What determines a scorer's stage on `test_skill`: the cache key. In a cross-data-set cell "dataset" is
        the test data set's (the untouched model's scores are shared with that data set's own cells) and an adapted
        role's key adds the train data set it adapted on."""
        dataset = {"dataset": self.tests_from.identity()}
        if self.test_dataset is not None and stage.role.learner is not None:
            dataset["train_dataset"] = self.dataset.identity()
        return {"model": self.model_key(), **dataset, "format": self.fmt.identity(),
                **self.format_key(), "test_skill": test_skill, "adaptation": stage.role.key, **stage.parts}

    def roles(self) -> Roles:
        """The models the cell scores with: the untouched model, the control (the untouched model when the
        learner has none) and the learner."""
        role = lambda learner: Role(learner.name, learner, learner.key(self.train_skill, self.seed))  # noqa: E731
        base = Role("base")
        control = self.learner.control()
        return Roles(base=base, control=role(control) if control is not None else base, learner=role(self.learner),
                     seed=self.seed)


class _Stages:
    """Adaptations of one cell and the models they give, each built only when the stage cache does not hold it."""

    def __init__(self, cell: Cell, session: ModelSession | None = None, suffix: str = ""):
        self.cell = cell
        # nothing loads until a stage needs the model; a learning curve's sizes share the cell's session
        self.session = session if session is not None else cell.model.session(cell.device)
        self.context = cell.context(self.session)
        self.adaptations: dict[str, Adaptation] = {}
        self.suffix = suffix  # adapters load under names of their own per curve size (tune-skill@10)

    def adaptation(self, learner) -> Adaptation:
        """The learner's adaptation (a prefix or an adapter on disk); cheap when the stage cache holds it."""
        if learner.name not in self.adaptations:
            self.adaptations[learner.name] = learner.adapt(self.context)
        return self.adaptations[learner.name]

    @contextmanager
    def open(self, role: Role):
        """(language model, prompt prefix) with the role's adaptation active; the model is loaded once."""
        adapted = Adaptation() if role.learner is None else self.adaptation(role.learner)
        adapter = None
        if adapted.adapter_dir is not None:
            adapter = f"{role.name}{self.suffix}"
            self.session.load_adapter(adapter, adapted.adapter_dir)
        with self.session.language_model(adapter) as lm:
            yield lm, adapted.prefix


class SkillView:
    """What a scorer sees of one test skill: its questions, the roles, the models and the stage cache; `fmt` places
    text (prompts, the instruction line) and `format` is the answer format (ntkeval.formats: stop(), read())."""

    def __init__(self, stages: _Stages, test_skill: str):
        cell = stages.cell
        self.test_skill = test_skill
        self.examples = cell.tests_from.test(test_skill)
        # the test side's data set: answers are read, checked and verified by the data set the questions come from
        self.dataset, self.fmt, self.format, self.seed = cell.tests_from, cell.fmt, cell.format, cell.seed
        self.roles = cell.roles()
        self.context = stages.context  # the cell's AdaptContext: what a scorer needs of the train side (entk)
        self._stages = stages

    def record(self, stage: Stage, compute):
        """The stage's value from the cache, or computed (once, under a lock) and stored."""
        cell = self._stages.cell
        return cell.cache.record(stage.kind, cell.stage_parts(stage, self.test_skill), compute)

    def open(self, role: Role):
        return self._stages.open(role)


def skill_views(cell: Cell) -> list[SkillView]:
    """One view per test skill, sharing one model session (for tools that study a cell's stages directly)."""
    stages = _Stages(cell)
    return [SkillView(stages, skill) for skill in cell.test_skills]


def run_cell(cell: Cell, tracker) -> dict:
    """Run one cell and return its result (also written to cell.out_dir/result.json). The model is the one this
    process loaded for an earlier cell of the same model, when there was one (ntkeval.backends.session_pool)."""
    cell.scorer.validate(cell.learner)
    with shared_session(cell.model, cell.device) as session:
        return _run_cell(cell, tracker, _Stages(cell, session))


def _run_cell(cell: Cell, tracker, stages: _Stages) -> dict:
    rows, questions = [], []
    for skill in cell.test_skills:
        row, per_question = cell.scorer.compare(SkillView(stages, skill))
        rows.append(row)
        questions += per_question
        log.info("%s -> %s: delta %+.4f [%+.4f, %+.4f]", cell.train_skill, skill, row["delta"], row["ci_low"],
                 row["ci_high"])
    curve = score_curve(cell, stages)  # [] unless learner.curve lists adaptation sizes
    computed, cached = sum(cell.cache.misses.values()), sum(cell.cache.hits.values())
    log.info("stages: %d computed, %d from the cache%s", computed, cached, "" if computed else " (nothing recomputed)")
    result = {"status": "done", "cell": {"cell_id": cell.cell_id(), **cell.identity(), "code_version": code_version()},
              "tests": rows, "error": None, "log": None, "cache": {"hits": cell.cache.hits, "misses": cell.cache.misses,
                                                            "lock_wait_s": round(cell.cache.lock_wait_s, 3)},
              "config": cell.config, "adaptation": adaptation_records(stages),
              "skill_groups": recorded_groups(cell), **({"curve": curve} if curve else {})}
    cell.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.out_dir / "questions.jsonl", "".join(json.dumps(q) + "\n" for q in questions))
    atomic_write_text(cell.out_dir / "result.json", json.dumps(result, indent=1))
    mirror_to_tracker(tracker, result, questions, stages)
    return result


def score_curve(cell: Cell, stages: _Stages) -> list[dict]:
    """The learning curve (ntkeval.learning_curve): one row per (size, test skill), {"size", "unit", and the scorer's
    kernel row}, the learner and its control at each size of learner.curve scored in the cell's model session; []
    when the learner has no curve."""
    rows, unit = {}, curve_unit(cell.learner)
    # largest first: when a size's adapter must be trained (the full one was cached before the curve was asked
    # for), that run saves the smaller sizes on its way
    for size in sorted(curve_sizes(cell.learner), reverse=True):
        sized = _Stages(sized_cell(cell, size), stages.session, suffix=f"@{size}")
        for skill in cell.test_skills:
            row, _questions = cell.scorer.compare(SkillView(sized, skill))
            rows[size, skill] = {"size": size, "unit": unit, **row}
            log.info("curve %s=%d: %s -> %s: delta %+.4f [%+.4f, %+.4f]", unit, size, cell.train_skill, skill,
                     row["delta"], row["ci_low"], row["ci_high"])
    return [rows[size, skill] for size in curve_sizes(cell.learner) for skill in cell.test_skills]


def recorded_groups(cell: Cell) -> dict:
    """The skill groups of the cell's skills (for the report's deep-versus-surface test); a cross-data-set cell
    records its test data set's groups of the test skills (its kernel is not square: train and test skills differ)."""
    if cell.test_dataset is not None:
        return cell.test_dataset.skill_groups().only(cell.test_skills).to_json()
    return cell.dataset.skill_groups().only([cell.train_skill, *cell.test_skills]).to_json()


def adaptation_records(stages: _Stages) -> dict[str, dict]:
    """What the learner and its control report about their adaptations (role name -> AdaptationRecord JSON), from
    the adaptations built for this cell or, when the scorer's stages were all cached, from the stage cache (never
    adapting for it); roles that report nothing are left out."""
    records = {}
    for learner in (stages.cell.learner, stages.cell.learner.control()):
        if learner is None:
            continue
        adapted = stages.adaptations.get(learner.name)
        if adapted is not None:
            record = adapted.record
        else:
            peek = getattr(learner, "recorded_record", None)
            record = peek(stages.context) if callable(peek) else None
        if record is not None and (record.info or record.tables):
            records[learner.name] = record.to_json()
    return records


def mirror_to_tracker(tracker, result: dict, questions: list[dict], stages: _Stages) -> None:
    """W&B mirrors what is on disk: the loss curve of a tuned learner, the kernel row, the per-question table, and
    what the learners report of their adaptations (info in the summary, their tables as tables)."""
    learner = stages.cell.learner
    adapted = stages.adaptations.get(learner.name)  # read, never built: logging must not train
    loss = adapted.loss if adapted is not None else learner.recorded_loss(stages.context)
    for step, value in enumerate(loss):
        tracker.log({"train/loss": value}, step=step)
    summary = {f"{r['test_skill']}/{k}": v for r in result["tests"] for k, v in r.items() if k != "test_skill"}
    summary["delta_mean"] = sum(r["delta"] for r in result["tests"]) / len(result["tests"])
    records = {name: AdaptationRecord.from_json(data) for name, data in (result.get("adaptation") or {}).items()}
    for name, record in records.items():
        summary.update({f"adaptation/{name}/{k}": v for k, v in record.info.items()})
    tracker.summary(summary)
    for name, record in records.items():
        for table, data in record.tables.items():
            tracker.table(f"{name}/{table}", list(data["columns"]), [list(row) for row in data["rows"]])
    if questions:
        columns = list(questions[0])
        tracker.table("questions", columns, [[q[c] for c in columns] for q in questions])
    mirror_curve(tracker, result)  # the learning curve's table and curve/<size>/delta_mean, if it has one


def mirror_from_disk(cell: Cell, tracker, result: dict) -> None:
    """Mirror a cell that is done on disk again (its W&B run went missing or was cut short): its result.json and
    questions.jsonl as written, the loss curve as the stage cache recorded it; nothing is loaded, trained or scored."""
    lines = (cell.out_dir / "questions.jsonl").read_text().splitlines()
    mirror_to_tracker(tracker, result, [json.loads(line) for line in lines if line.strip()], _Stages(cell))


def code_version() -> str:
    """The package version plus the git commit of the source tree when there is one."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{ntkeval.__version__}+g{sha}" if sha else ntkeval.__version__


def failed_result(cell: Cell, error: BaseException, log_file: Path) -> None:
    """Record a failed cell on disk (first error line and log path), so reports name it instead of losing it."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    result = {"status": "failed", "cell": {"cell_id": cell.cell_id(), **cell.identity(),
                                           "code_version": code_version()},
              "tests": [], "error": f"{type(error).__name__}: {first}", "log": str(log_file), "config": cell.config}
    log.error("cell failed: %s (log: %s)", result["error"], log_file)
    cell.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cell.out_dir / "result.json", json.dumps(result, indent=1))
