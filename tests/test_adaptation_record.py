"""What a learner reports about its adaptation (AdaptationRecord: kept-path counts, an instruction trajectory) lands
in result.json under "adaptation" by learner name, reaches W&B (info in the summary, tables as tables) from what is on
disk, survives a rerun whose stages are all cached (the learner's recorded_record, never re-adapting), and a
learner's validate_format is asked by the preflight for the learner and its control."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.cache import StageCache
from ntkeval.cell import Cell, mirror_from_disk, run_cell
from ntkeval.data.arith import ArithDataset
from ntkeval.errors import UserError
from ntkeval.formats.checks import format_checks
from ntkeval.learners.base import Adaptation, AdaptationRecord
from ntkeval.learners.icl import InContextLearner
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer
from ntkeval.tracking.base import NullTracker


class RecordingTracker(NullTracker):
    def __init__(self):
        self.summaries: dict = {}
        self.tables: dict = {}

    def summary(self, values: dict) -> None:
        self.summaries.update(values)

    def table(self, key: str, columns: list[str], rows: list[list]) -> None:
        self.tables[key] = (columns, rows)


@dataclass
class ReportingLearner(InContextLearner):
    """icl-skill that reports how many demonstrations it used and which ones, and counts its adaptations."""
    adapted: list = field(default_factory=list)
    refuse_format: str | None = None

    def control(self):
        twin = super().control()
        return None if twin is None else ReportingLearner(name=twin.name, demos=twin.demos, source=twin.source,
                                                          adapted=self.adapted, refuse_format=self.refuse_format)

    def _record(self, context) -> AdaptationRecord:
        ids = [e.id for e in context.dataset.train(context.train_skill)[:2]]
        return AdaptationRecord(info={"demos": self.demos, "source": self.source},
                                tables={"shown": {"columns": ["rank", "id"], "rows": [[i, x] for i, x in enumerate(ids)]}})

    def adapt(self, context) -> Adaptation:
        self.adapted.append(self.name)
        adapted = super().adapt(context)
        return Adaptation(prefix=adapted.prefix, record=self._record(context))

    def recorded_record(self, context) -> AdaptationRecord:
        return self._record(context)

    def validate_format(self, answer_format, dataset, train_skill) -> None:
        if answer_format.name == self.refuse_format:
            raise UserError(f"learner={self.name} cannot write format={answer_format.name}; expected direct")


def _cell(tmp_path, learner, out="cell") -> Cell:
    return Cell(model=TinyModel(name="tiny"), learner=learner, dataset=ArithDataset(n_train=4, n_test=2),
                train_skill="add/question", test_skills=["add/question"], scorer=ExactScorer(batch_size=4),
                fmt=PromptFormat(), seed=0, cache=StageCache(tmp_path / "cache"), out_dir=tmp_path / out)


def test_records_land_in_result_json_and_w_and_b_by_learner_name(tmp_path):
    learner = ReportingLearner(name="icl-skill", demos=2, source="skill")
    tracker = RecordingTracker()
    result = run_cell(_cell(tmp_path, learner), tracker)
    on_disk = json.loads((tmp_path / "cell" / "result.json").read_text())
    assert on_disk["adaptation"] == result["adaptation"]
    ids = [e.id for e in ArithDataset(n_train=4, n_test=2).train("add/question")[:2]]
    assert result["adaptation"]["icl-skill"] == {
        "info": {"demos": 2, "source": "skill"},
        "tables": {"shown": {"columns": ["rank", "id"], "rows": [[0, ids[0]], [1, ids[1]]]}}}
    assert result["adaptation"]["icl-standard"]["info"] == {"demos": 2, "source": "all"}
    assert tracker.summaries["adaptation/icl-skill/demos"] == 2
    assert tracker.summaries["adaptation/icl-standard/source"] == "all"
    assert tracker.tables["icl-skill/shown"] == (["rank", "id"], [[0, ids[0]], [1, ids[1]]])


def test_a_rerun_from_the_cache_reports_from_recorded_record_without_adapting(tmp_path):
    run_cell(_cell(tmp_path, ReportingLearner(name="icl-skill", demos=2)), NullTracker())
    again = ReportingLearner(name="icl-skill", demos=2)
    result = run_cell(_cell(tmp_path, again, out="again"), NullTracker())
    assert again.adapted == []  # every score was cached: nothing adapted
    assert result["adaptation"]["icl-skill"]["info"] == {"demos": 2, "source": "skill"}


def test_mirror_from_disk_logs_the_tables_written_in_result_json(tmp_path):
    cell = _cell(tmp_path, ReportingLearner(name="icl-skill", demos=2))
    result = run_cell(cell, NullTracker())
    result["adaptation"]["icl-skill"]["tables"]["shown"]["rows"] = [[7, "edited on disk"]]
    tracker = RecordingTracker()
    mirror_from_disk(cell, tracker, result)
    assert tracker.tables["icl-skill/shown"] == (["rank", "id"], [[7, "edited on disk"]])


def test_learners_without_records_add_nothing(tmp_path):
    result = run_cell(_cell(tmp_path, InContextLearner(name="icl-skill", demos=2)), NullTracker())
    assert result["adaptation"] == {}


def test_the_format_check_asks_the_learner_and_its_control(tmp_path):
    class Cot:
        name, reasoning = "cot", False  # reasoning False: only the learner's own check can refuse it

    cell = _cell(tmp_path, ReportingLearner(name="icl-skill", demos=2, refuse_format="cot"))
    cell.format = Cot()
    with pytest.raises(UserError, match="learner=icl-skill cannot write format=cot"):
        format_checks(cell)
    only_control = _cell(tmp_path, ReportingLearner(name="icl-skill", demos=2))
    only_control.learner.control = lambda: ReportingLearner(name="icl-standard", source="all", refuse_format="cot")
    only_control.format = Cot()
    with pytest.raises(UserError, match="learner=icl-standard"):
        format_checks(only_control)
