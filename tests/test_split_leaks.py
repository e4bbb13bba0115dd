"""Independent leak checks: no test problem of any skill is, in any order or wording, a train problem of any skill of
the same data set. Problems are re-read from each example's question text and answer, never from a generator's key.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from ntkeval.data.arith import ArithDataset
from ntkeval.data.base import Example
from ntkeval.data.jsonl import JsonlDataset
from ntkeval.data.khanskill import KhanSkillDataset
from ntkeval.errors import UserError

SEEDS = (0, 1)
Signature = tuple[tuple[Fraction, ...], object]


def numbers_shown(question: str) -> tuple[Fraction, ...]:
    """The numbers a question shows as written, unsigned and sorted: 1,200 -> 1200; 3/4 -> 3 and 4; 0.50 -> 1/2.

    Signs are dropped and order is forgotten on purpose: the coarser this reading, the more pairs count as one problem,
    so the check is stricter."""
    plain = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", question)  # a thousands separator is not a list comma
    return tuple(sorted(Fraction(token) for token in re.findall(r"\d+(?:\.\d+)?", plain)))


def answer_value(answer: str) -> object:
    """The answer as a value where it is a plain number (0.5, 1/2 and 2/4 are one value), else its lowercase words."""
    text = " ".join(answer.lower().split())
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return text


def signature(example: Example) -> Signature:
    """What makes two questions the same problem here: the same numbers, in any order and any wording, and the same
    answer."""
    return numbers_shown(example.question), answer_value(example.answer)


def leaks(train: list[Example], test: list[Example]) -> list[tuple[Example, Example]]:
    """(test example, train example) pairs that pose the same problem."""
    seen: dict[Signature, Example] = {}
    for example in train:
        seen.setdefault(signature(example), example)
    return [(example, seen[signature(example)]) for example in test if signature(example) in seen]


def describe(found: list[tuple[Example, Example]]) -> str:
    shown = "; ".join(f"test {t.id} {t.question!r} = train {r.id} {r.question!r}" for t, r in found[:4])
    return f"{len(found)} test examples pose a train problem: {shown}"


def repeats(examples: list[Example]) -> list[tuple[Example, Example]]:
    """Pairs of examples of one split of one skill that pose the same problem (ids end in /train/i or /test/i)."""
    first: dict[tuple[str, Signature], Example] = {}
    found = []
    for example in examples:
        where = (example.id.rsplit("/", 1)[0], signature(example))
        if where in first:
            found.append((example, first[where]))
        first.setdefault(where, example)
    return found


def every_split(datasets: list) -> tuple[list[Example], list[Example]]:
    """All train and all test examples of every skill of every data set (seeds of one data set share one split)."""
    train = [e for ds in datasets for skill in ds.skills() for e in ds.train(skill)]
    test = [e for ds in datasets for skill in ds.skills() for e in ds.test(skill)]
    return train, test


def test_the_signature_sees_twins_orders_and_surfaces_as_one_problem():
    gcf = Example("x", "s", "What is the greatest common factor of 18 and 12?", "6")
    beads = Example("y", "t", "Mia has 12 red beads and 18 blue beads and puts them all into bags. How many bags?", "6")
    assert signature(gcf) == signature(beads)
    assert signature(Example("x", "s", "What is 1,200 + 0.50?", "1200.5")) == \
        signature(Example("y", "t", "Add 0.5 and 1200.", "1200.50"))
    assert signature(Example("x", "s", "What is 3/4 of 8?", "6")) != signature(Example("y", "t", "3 + 4 + 8", "15"))
    found = leaks([beads], [gcf, Example("z", "s", "What is the greatest common factor of 18 and 24?", "6")])
    assert [t.id for t, _ in found] == ["x"]


@pytest.mark.parametrize("sizes", [{}, {"n_train": 20, "n_test": 12}])  # the default and experiment=khanskill-cpu
def test_khanskill_no_test_problem_is_a_train_problem_of_any_skill(sizes):
    datasets = [KhanSkillDataset(seed=seed, **sizes) for seed in SEEDS]
    train, test = every_split(datasets)
    assert len(test) == len(SEEDS) * len(datasets[0].skills()) * datasets[0].n_test
    found = leaks(train, test)
    assert not found, describe(found)
    for ds in datasets:  # and one problem at most once per split of a skill (another seed may draw it again)
        assert not repeats(sum(every_split([ds]), [])), repeats(sum(every_split([ds]), []))[:4]


@pytest.mark.parametrize("sizes", [{}, {"n_train": 64, "n_test": 100}])  # the default and experiment=paper-arith
def test_arith_no_test_problem_is_a_train_problem_of_any_skill(sizes):
    datasets = [ArithDataset(seed=seed, **sizes) for seed in SEEDS]
    train, test = every_split(datasets)
    assert len(datasets[0].skills()) == 24 and len(test) == len(SEEDS) * 24 * datasets[0].n_test
    found = leaks(train, test)
    assert not found, describe(found)
    for ds in datasets:  # and one problem at most once per split of a skill (another seed may draw it again)
        assert not repeats(sum(every_split([ds]), [])), repeats(sum(every_split([ds]), []))[:4]


# the default, and paper-arith's sizes: 100 test problems of mul/backward need max_operand=199 (a backward problem
# qualifies only when its forward problem and the numbers it shows both fall in the bucket, 1 in 16 for test)
@pytest.mark.parametrize("sizes", [{}, {"n_train": 64, "n_test": 100, "max_operand": 199}])
def test_arith_with_backward_no_test_problem_is_a_train_problem_of_any_skill(sizes):
    """The fifth format poses problems the other way ("x + 55 = 96. What is x?" shows 55 and 96, as "96 - 55" does):
    no direction of a test problem is trained on."""
    formats = ["question", "instruction", "symbol", "word", "backward"]
    datasets = [ArithDataset(seed=seed, formats=formats, **sizes) for seed in SEEDS]
    train, test = every_split(datasets)
    assert len(datasets[0].skills()) == 30 and len(test) == len(SEEDS) * 30 * datasets[0].n_test
    found = leaks(train, test)
    assert not found, describe(found)
    # and the forward problem behind a backward test question ("x + 55 = 96" -> 41 + 55 = 96) is no train problem
    trained = {signature(e) for e in train}
    forwards = [(e, Example(e.id, e.skill, left.replace("x", e.answer), result)) for e in test
                if e.skill.endswith("/backward")
                for left, result in [e.question.removesuffix(". What is x?").split(" = ")]]
    crossed = [e.question for e, forward in forwards if signature(forward) in trained]
    assert len(forwards) == len(SEEDS) * 6 * datasets[0].n_test and not crossed, crossed[:4]
    for ds in datasets:
        assert not repeats(sum(every_split([ds]), [])), repeats(sum(every_split([ds]), []))[:4]


def shared_rows() -> list[dict]:
    """Three skills that share questions, written with other spacing and case in the second and third."""
    rows = []
    for i in range(14):
        rows.append({"question": f"What is {i} + {i + 5}?", "answer": str(2 * i + 5), "skill": "add"})
    for i in range(4, 18):  # 10 of add's questions, respaced and capitalised
        rows.append({"question": f"WHAT IS  {i} +  {i + 5}?", "answer": str(2 * i + 5), "skill": "add-again"})
    for i in range(8, 22):
        rows.append({"question": f"what is {i} + {i + 5}? ", "answer": str(2 * i + 5), "skill": "sums"})
    return rows


def same_text(question: str) -> str:
    """The test's own reading of 'the same question': case and runs of whitespace do not matter."""
    return re.sub(r"\s+", " ", question).strip().lower()


@pytest.mark.parametrize("seed", range(12))
def test_jsonl_identical_questions_of_several_skills_fall_on_one_side(tmp_path, seed):
    path = tmp_path / "shared.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in shared_rows()))
    ds = JsonlDataset(path=str(path), seed=seed, n_train=5, n_test=5)
    train, test = every_split([ds])
    assert all(len(ds.train(s)) == 5 and len(ds.test(s)) == 5 for s in ds.skills())
    train_texts = {same_text(e.question): e for e in train}
    found = [(e, train_texts[same_text(e.question)]) for e in test if same_text(e.question) in train_texts]
    assert not found, describe(found)


def test_jsonl_says_when_shared_questions_leave_a_skill_too_few(tmp_path):
    def rows(skill: str, numbers) -> list[dict]:
        return [{"question": f"What is {i} + 1?", "answer": str(i + 1), "skill": skill} for i in numbers]
    path = tmp_path / "tight.jsonl"
    # a and c use all four of their questions; b has none of its own: two from a and two from c
    path.write_text("".join(json.dumps(row) + "\n" for row in rows("a", range(4)) + rows("c", range(4, 8)) +
                            rows("b", (0, 1, 4, 5))))
    outcomes = set()
    for seed in range(20):
        try:
            ds = JsonlDataset(path=str(path), seed=seed, n_train=2, n_test=2)
        except UserError as error:
            assert re.search(r"skill 'b' cannot fill n_test = 2 and n_train = 2: 4 of its 4 questions are shared",
                             str(error)), error
            outcomes.add("refused")
        else:
            assert not leaks(*every_split([ds]))
            assert {e.question for e in ds.test("b")} <= {e.question for e in ds.test("a") + ds.test("c")}
            outcomes.add("built")
    assert outcomes == {"built", "refused"}  # b is refused when a and c put three of its four on one side
