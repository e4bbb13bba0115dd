"""maj@k is exact: the dynamic program of ntkeval.stats.majority equals brute-force enumeration of every k-subset
(exact Fractions, ties split uniformly, abstentions never win) on small cases, and hand-computed values."""

import random
from fractions import Fraction
from itertools import combinations
from math import comb

import pytest

from ntkeval.stats.majority import maj_at_k


def brute(answers: list[int | None], correct_groups: set[int], k: int) -> Fraction:
    """Every k-subset of the completions (answers[i]: completion i's group, None: abstains), its majority with
    ties split uniformly; the mean over subsets."""
    total = Fraction(0)
    for subset in combinations(range(len(answers)), k):
        votes: dict[int, int] = {}
        for i in subset:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0) + 1
        if votes:
            top = max(votes.values())
            winners = [g for g, v in votes.items() if v == top]
            total += Fraction(sum(g in correct_groups for g in winners), len(winners))
    return total / comb(len(answers), k)


def grouped(answers: list[int | None], correct_groups: set[int]):
    groups = sorted({a for a in answers if a is not None})
    return ([answers.count(g) for g in groups], [g in correct_groups for g in groups], answers.count(None))


def test_hand_computed_values():
    # answers A A B, A correct: k=1 -> 2/3; k=2 -> {AA}: 1, {AB} twice: tie 1/2 each -> (1 + 1/2 + 1/2)/3 = 2/3;
    # k=3 -> A wins: 1
    assert maj_at_k([2, 1], [True, False], 0, 1) == Fraction(2, 3)
    assert maj_at_k([2, 1], [True, False], 0, 2) == Fraction(2, 3)
    assert maj_at_k([2, 1], [True, False], 0, 3) == 1
    # A B plus one abstention, k=2: {A,B} tie 1/2, {A,-} A wins 1, {B,-} 0 -> (1/2 + 1 + 0)/3 = 1/2
    assert maj_at_k([1, 1], [True, False], 1, 2) == Fraction(1, 2)
    # only abstentions drawn: no answer, wrong; all wrong: 0
    assert maj_at_k([1], [True], 2, 1) == Fraction(1, 3)
    assert maj_at_k([3, 2], [False, False], 1, 4) == 0


def test_maj_at_1_is_the_accuracy():
    assert maj_at_k([5, 3, 2], [False, True, False], 6, 1) == Fraction(3, 16)


@pytest.mark.parametrize("seed", range(60))
def test_equals_enumeration_of_every_subset(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 11)
    n_groups = rng.randint(1, 5)
    answers = [None if rng.random() < 0.2 else rng.randrange(n_groups) for _ in range(n)]
    correct_groups = {g for g in range(n_groups) if rng.random() < 0.4} or {0}
    counts, correct, abstain = grouped(answers, correct_groups)
    for k in range(1, n + 1):
        assert maj_at_k(counts, correct, abstain, k) == brute(answers, correct_groups, k), (answers, k)


def test_majority_voting_helps_when_the_right_answer_is_the_mode():
    # 8 of 20 right, the wrong ones spread over 6 answers: maj@k rises with k, and is 1 at k = 20
    counts, correct = [8, 3, 3, 2, 2, 1, 1], [True] + [False] * 6
    values = [maj_at_k(counts, correct, 0, k) for k in (1, 5, 20)]
    assert values[0] == Fraction(8, 20) and values[0] < values[1] < values[2] == 1


@pytest.mark.parametrize("counts, correct, abstain, k, words", [
    ([2, 0], [True, False], 0, 1, "positive count"), ([2], [True, False], 0, 1, "correctness flag"),
    ([2], [True], 0, 3, "k=3"), ([2], [True], 0, 0, "k=0")])
def test_bad_input_is_named(counts, correct, abstain, k, words):
    with pytest.raises(ValueError, match=words):
        maj_at_k(counts, correct, abstain, k)
