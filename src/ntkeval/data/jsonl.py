"""Your own skill-labelled questions, from a JSONL file or a Hugging Face data set, split per skill by the seed.

    {"question": "What is 3/4 + 1/8?", "answer": "7/8", "skill": "fractions/add", "answer_type": "fraction"}

    ntkeval dataset=jsonl dataset.path=questions.jsonl pair.train=fractions/add
    ntkeval dataset=jsonl dataset.path=null dataset.hf_name=owner/name dataset.fields.skill=topic ...

One JSON object per line with `question`, `answer` and `skill`, and optionally `format` (a surface format that
`resolve` can select, e.g. "word"), `answer_type` (a kind of ntkeval.data.answer_kinds; inferred from the answer's
written form when absent), and for the reasoning formats (ntkeval.formats) `rationale` (the worked steps, one per
line: format=cot, work) and `program` (Python that prints the answer: format=pot; hybrid writes it where given,
else the rationale; ntkeval.data.jsonl_solutions). Each skill's questions are shuffled by the seed: the first n_test are its test set,
the next n_train its train set. A question that several skills share (the same text up to case and spacing) sits on
one side for all of them: skills are split in file order, and a later skill skips shared questions that an earlier
one put on the other side, so no test question of any skill is a train question of any skill.

`groups: [topic, format]` names the record fields that group skills for the deep-versus-surface analysis: the first
is the deep axis, the second (optional) the surface axis; each skill must hold one value of each, and the values
also select skills (pair.train=algebra). Without it the deep axis is the part of skill names before their first '/'.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ntkeval.data.answer_kinds import KINDS, equivalent, infer_kind, wrong_answer
from ntkeval.data.base import Example, SkillGroups
from ntkeval.data.jsonl_solutions import SOLUTION_FIELDS, JsonlSolutions
from ntkeval.data.selection import select_skills
from ntkeval.errors import UserError, choices_error

VERSION = 2  # bump whenever a change alters how records become examples; it is part of identity()
REQUIRED = ("question", "answer", "skill")
OPTIONAL = ("format", "answer_type", *SOLUTION_FIELDS)
ANSWER_TYPES = ("auto", *KINDS)  # auto: inferred from how the answer is written


@dataclass(frozen=True)
class Record:
    question: str
    answer: str
    skill: str
    format: str | None
    kind: str   # the answer kind, after inference
    where: str  # "line 7" or "row 7", for messages
    rationale: str | None = None  # worked steps, one per line
    program: str | None = None    # Python source that prints the answer


def same_question(question: str) -> str:
    """The text that decides whether two questions are one: case and runs of whitespace do not count."""
    return " ".join(question.split()).casefold()


def load_hf_rows(name: str, config: str | None, split: str) -> list[dict]:
    """The rows of a Hugging Face data set; `datasets` is imported only here, as most users never need it."""
    try:
        import datasets
    except ImportError:
        raise UserError("jsonl: hf_name needs the Hugging Face datasets library: pip install datasets") from None
    try:
        return [dict(row) for row in datasets.load_dataset(name, config, split=split)]
    except Exception as error:  # network, unknown name, unknown split or config: the user fixes all alike
        detail = " ".join(str(error).split())
        raise UserError(f"jsonl: could not load Hugging Face data set {name!r} (config {config!r}, split "
                        f"{split!r}): {detail}") from None


def _read_jsonl(path: str) -> list[tuple[str, object]]:
    """(where, parsed object) for every non-blank line of the file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"jsonl: file {str(file)!r} not found (dataset.path)")
    rows = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"line {number}", json.loads(line.rstrip("\r\n"))))
            except json.JSONDecodeError as error:
                raise UserError(f"jsonl: {file} line {number}: malformed JSON ({error.msg} at column "
                                f"{error.colno})") from None
    return rows


def _record(where: str, row: object, fields: Mapping[str, str], source: str) -> Record:
    """One validated record; `fields` maps our field names to the row's keys (columns)."""
    if not isinstance(row, dict):
        raise UserError(f"jsonl: {source} {where}: expected a JSON object, got {type(row).__name__}")
    values: dict[str, str | None] = {}
    for name in REQUIRED + OPTIONAL:
        column = fields.get(name, name)
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in REQUIRED:
                renamed = f" (column {column!r})" if column != name else ""
                raise UserError(f"jsonl: {source} {where}: missing field {name!r}{renamed}")
            values[name] = None
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            values[name] = str(value).strip()
        else:
            raise UserError(f"jsonl: {source} {where}: field {name!r} must be a string or a number, got {value!r}")
    kind = values["answer_type"] or "auto"
    if kind not in ANSWER_TYPES:
        raise UserError(f"jsonl: {source} {where}: {choices_error('answer_type', kind, ANSWER_TYPES)}")
    kind = infer_kind(values["answer"]) if kind == "auto" else kind
    if not equivalent(values["answer"], values["answer"], kind):
        raise UserError(f"jsonl: {source} {where}: answer {values['answer']!r} is not a valid {kind} answer "
                        f"({KINDS[kind]})")
    return Record(values["question"], values["answer"], values["skill"], values["format"], kind, where,
                  values["rationale"], values["program"])


def _pick(order: list[Record], fixed: list[str | None], n_test: int, n_train: int) -> tuple[list[Record], list[Record]]:
    """The first n_test questions of `order` allowed in test, then the first n_train of the rest allowed in train;
    fixed[i] is the side question i must keep (None: free). Test leaves train the free questions it needs, so a skill
    is refused only when no split respects the fixed sides; without fixed sides this is order[:n_test] and the next
    n_train."""
    spare = fixed.count(None) - max(0, n_train - fixed.count("train"))  # free questions test may take
    test: list[int] = []
    for i, side in enumerate(fixed):
        if len(test) < n_test and (side == "test" or side is None and spare > 0):
            spare -= side is None
            test.append(i)
    train = [i for i, side in enumerate(fixed) if side != "test" and i not in test][:n_train]
    return [order[i] for i in test], [order[i] for i in train]


def _skill_groups(rows: list[tuple[str, object]], fields: Mapping[str, str], names: list[str] | None,
                  source: str) -> SkillGroups:
    """Each skill's value of each named field (the column `fields` maps it to); one value per skill and field."""
    skill_column = fields.get("skill", "skill")
    skills = list(dict.fromkeys(str(row[skill_column]).strip() for _, row in rows))
    if names is None:
        return SkillGroups(("domain",), "domain", None, {s: {"domain": s.split("/", 1)[0]} for s in skills})
    columns = {fields.get(name, name): name for name in REQUIRED + OPTIONAL}
    valid = sorted({columns.get(k, k) for _, row in rows for k in row})
    if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise UserError(f"jsonl: groups={names!r} is invalid; expected one or two distinct fields, deep first, "
                        f"then surface, e.g. [topic, format]; fields of {source}: {', '.join(valid)}")
    for name in names:
        if name not in valid:
            raise choices_error("field in dataset.groups", name, valid)
    values: dict[str, dict[str, set[str]]] = {s: {n: set() for n in names} for s in skills}
    for _, row in rows:
        for name in names:
            value = row.get(fields.get(name, name))
            if value is not None and str(value).strip():
                values[str(row[skill_column]).strip()][name].add(str(value).strip())
    for skill, by_name in values.items():
        for name, found in by_name.items():
            if len(found) != 1:
                what = "no value" if not found else f"several values ({', '.join(sorted(found))})"
                raise UserError(f"jsonl: {source}: skill {skill!r} has {what} of group field {name!r}; a group "
                                "field holds one value per skill")
    return SkillGroups(tuple(names), names[0], names[1] if len(names) > 1 else None,
                       {s: {n: found.pop() for n, found in by_name.items()} for s, by_name in values.items()})


class JsonlDataset(JsonlSolutions):
    """Skill-labelled questions from a file or a hub data set, validated on construction so bad data fails early."""

    name = "jsonl"

    def __init__(self, path: str | None = None, seed: int = 0, n_train: int = 20, n_test: int = 20,
                 hf_name: str | None = None, hf_split: str = "train", hf_config: str | None = None,
                 fields: Mapping[str, str] | None = None, groups: list[str] | None = None):
        for what, value in (("n_train", n_train), ("n_test", n_test)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"jsonl: {what} must be an integer >= 0, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"jsonl: seed must be an integer, got {seed!r}")
        if (path is None) == (hf_name is None):
            raise UserError("jsonl: set exactly one of dataset.path (a .jsonl file) and dataset.hf_name "
                            "(a Hugging Face data set; then also dataset.path=null)")
        fields = dict(fields or {})
        for name in fields:
            if name not in REQUIRED + OPTIONAL:
                raise choices_error("field in dataset.fields", name, REQUIRED + OPTIONAL)
        self.seed, self.n_train, self.n_test = seed, n_train, n_test
        if path is not None:
            self.source, rows = str(path), _read_jsonl(str(path))
        else:
            self.source = f"hf:{hf_name}" + (f"/{hf_config}" if hf_config else "") + f":{hf_split}"
            rows = [(f"row {i}", row) for i, row in enumerate(load_hf_rows(hf_name, hf_config, hf_split), start=1)]
        self._by_skill = self._group([_record(where, row, fields, self.source) for where, row in rows])
        self._named_groups = groups is not None
        self._groups = _skill_groups(rows, fields, list(groups) if groups is not None else None, self.source)
        self._formats = {s: {r.format for r in records if r.format} for s, records in self._by_skill.items()}
        self._check_names()
        sides: dict[str, str] = {}  # same_question -> the side the first skill that used it put it on
        self._splits = {skill: self._split(skill, records, sides) for skill, records in self._by_skill.items()}
        self._kinds = {e.id: r.kind for pairs in self._splits.values() for e, r in pairs}
        self._digest = hashlib.sha256(json.dumps(
            [{k: v for k, v in asdict(r).items() if k != "where" and not (k in SOLUTION_FIELDS and v is None)}
             for rs in self._by_skill.values() for r in rs]  # absent solutions left out: older keys hold
        ).encode()).hexdigest()

    def _group(self, records: list[Record]) -> dict[str, list[Record]]:
        """Records by skill in first-seen order; a repeated question keeps one copy, or fails if answers differ."""
        if not records:
            raise UserError(f"jsonl: {self.source} has no questions")
        by_skill: dict[str, list[Record]] = {}
        first: dict[tuple[str, str], Record] = {}
        for record in records:
            key = (record.skill, same_question(record.question))
            if key in first:
                if not equivalent(record.answer, first[key].answer, record.kind):
                    raise UserError(f"jsonl: {self.source} {record.where}: question repeats {first[key].where} of "
                                    f"skill {record.skill!r} with another answer ({record.answer!r} vs "
                                    f"{first[key].answer!r})")
                continue  # a duplicate would otherwise sit in train and in test at once
            first[key] = record
            by_skill.setdefault(record.skill, []).append(record)
        return by_skill

    def _check_names(self) -> None:
        formats = set().union(*self._formats.values())
        for name in ("all", *formats):
            if name in self._by_skill:
                raise UserError(f"jsonl: {self.source}: skill name {name!r} is also " +
                                ("reserved for every skill" if name == "all" else "a format") + "; rename one")

    def _split(self, skill: str, records: list[Record], sides: dict[str, str]) -> list[tuple[Example, Record]]:
        """The seeded test and train examples of a skill, none on the other side from where `sides` put it; records
        the sides this skill uses."""
        needed = self.n_train + self.n_test
        if len(records) < needed:
            raise UserError(f"jsonl: skill {skill!r} has {len(records)} distinct questions but n_train + n_test = "
                            f"{needed} are needed; lower dataset.n_train or dataset.n_test, or add questions")
        order = list(records)
        random.Random(f"jsonl:{self.seed}:{skill}").shuffle(order)  # str seed: stable across processes
        fixed = [sides.get(same_question(r.question)) for r in order]
        test, train = _pick(order, fixed, self.n_test, self.n_train)
        if len(test) < self.n_test or len(train) < self.n_train:
            raise UserError(f"jsonl: skill {skill!r} cannot fill n_test = {self.n_test} and n_train = "
                            f"{self.n_train}: {len(order) - fixed.count(None)} of its {len(records)} questions are "
                            "shared with earlier skills, and a shared question stays on the side where the first "
                            "skill put it; lower dataset.n_train or dataset.n_test, or add questions")
        pairs = []
        for split, picked in (("test", test), ("train", train)):
            for i, record in enumerate(picked):
                sides[same_question(record.question)] = split
                pairs.append((Example(f"{skill}/{split}/{i}", skill, record.question, record.answer), record))
        return pairs

    def skills(self) -> list[str]:
        return list(self._by_skill)

    def formats(self) -> list[str]:
        return sorted(set().union(*self._formats.values()))

    def resolve(self, spec: str | Iterable[str]) -> list[str]:
        """Skills named by 'all', a skill, a format (skills with questions in it), a group (the part of skill names
        before their first '/'), or any collection of these; in file order."""
        skills = list(self._by_skill)
        groups = {f: [s for s, formats in self._formats.items() if f in formats] for f in self.formats()}
        for prefix in sorted({s.split("/", 1)[0] for s in skills if "/" in s} - set(skills)):
            groups.setdefault(prefix, [s for s in skills if s.startswith(f"{prefix}/")])
        for axis in self._groups.axes if self._named_groups else ():  # values of the fields the user named
            for skill in skills:
                groups.setdefault(self._groups.of_skill[skill][axis], []).append(skill)
        return select_skills(spec, skills, groups)

    def skill_groups(self) -> SkillGroups:
        """The fields named in `groups` (deep first, then surface), else the part of skill names before '/'."""
        return self._groups

    def train(self, skill: str) -> list[Example]:
        return [e for e, _ in self._pairs(skill) if e.id.startswith(f"{skill}/train/")]

    def test(self, skill: str) -> list[Example]:
        return [e for e, _ in self._pairs(skill) if e.id.startswith(f"{skill}/test/")]

    def answer_kind(self, example: Example) -> str:
        return self._kinds.get(example.id) or infer_kind(example.answer)

    def is_correct(self, example: Example, given: str) -> bool:
        """Whether a free-form answer is equivalent to the example's, as its answer type allows."""
        return equivalent(given, example.answer, self.answer_kind(example))

    def random_answer(self, example: Example, rng: random.Random) -> str:
        """A wrong answer of the same kind: a number of it changed, or for text another answer of the skill."""
        choices = tuple(dict.fromkeys(r.answer for r in self._by_skill.get(example.skill, ())))
        try:
            return wrong_answer(example.answer, self.answer_kind(example), rng, choices)
        except ValueError as error:
            raise UserError(f"jsonl: {example.id!r}: {error}; give the skill more distinct answers or an "
                            "answer_type with numbers") from None

    def identity(self) -> dict:
        return {"name": self.name, "data_sha256": self._digest, "seed": self.seed, "n_train": self.n_train,
                "n_test": self.n_test, "version": VERSION}

    def _pairs(self, skill: str) -> list[tuple[Example, Record]]:
        if skill not in self._splits:
            raise choices_error("skill", skill, self._by_skill)
        return self._splits[skill]
