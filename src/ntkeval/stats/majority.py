"""maj@k, exactly: the probability that the majority answer of k completions drawn without replacement from the n
sampled for a question is correct (self-consistency, Wang et al. 2022), computed over every k-subset at once.

    maj_at_k(counts=[3, 2, 1], correct=[True, False, False], abstain=1, k=3)  # Fraction(...)

The n completions fall into answer groups (counts[i] completions give answer i; equal answers are one group) and
`abstain` completions with no readable answer. A k-subset is uniform over the C(n, k) subsets; its majority is the
group with the most members in it, a tie broken uniformly at random among the tied groups; a subset of abstentions
only has no answer (wrong). So

    maj@k = sum over correct groups j, over t >= 1 members of j drawn, over r other groups tied at t:
            C(c_j, t) * W(j, t, r) / (r + 1) / C(n, k)

where W(j, t, r) counts the ways to draw the other k - t completions with no other group above t and exactly r at t
(a polynomial product over the other groups, one dynamic program per (j, t)). All integers until the final
division: the result is an exact Fraction, checked against brute-force enumeration of subsets in tests/test_majority.py.
Cost O(groups x k^2 x k) per correct group, instant at the sizes sampled here (n <= a few hundred).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import comb


def maj_at_k(counts: Sequence[int], correct: Sequence[bool], abstain: int, k: int) -> Fraction:
    """P(the majority answer of a uniform k-subset of the completions is correct), ties split uniformly."""
    n = sum(counts) + abstain
    if len(counts) != len(correct) or any(c < 1 for c in counts) or abstain < 0:
        raise ValueError(f"need one positive count per answer group and a correctness flag each, got {counts}, "
                         f"{correct}, abstain={abstain}")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is invalid for {n} completions; valid: 1 <= k <= {n}")
    total = Fraction(0)
    for j, (c_j, right) in enumerate(zip(counts, correct)):
        if not right:
            continue
        others = [c for i, c in enumerate(counts) if i != j]
        for t in range(1, min(c_j, k) + 1):
            ways = _others_at_most(others, abstain, k - t, t)
            total += comb(c_j, t) * sum(Fraction(w, r + 1) for r, w in enumerate(ways))
    return total / comb(n, k)


def _others_at_most(others: Sequence[int], abstain: int, remaining: int, t: int) -> list[int]:
    """ways[r]: the ways to draw `remaining` completions from the other groups and the abstentions with every other
    group holding at most t of them and exactly r groups holding t (those tie with the group drawn t times)."""
    max_ties = remaining // t
    # table[s][r]: ways with s completions drawn so far, r groups tied at t
    table = [[0] * (max_ties + 1) for _ in range(remaining + 1)]
    table[0][0] = 1
    for c in others:
        grown = [[0] * (max_ties + 1) for _ in range(remaining + 1)]
        for s, row in enumerate(table):
            for r, w in enumerate(row):
                if not w:
                    continue
                for x in range(min(c, t, remaining - s) + 1):
                    tied = r + (x == t)
                    grown[s + x][tied] += w * comb(c, x)
        table = grown
    # abstentions never win nor tie: any number of them fills the rest
    return [sum(table[s][r] * comb(abstain, remaining - s) for s in range(remaining + 1))
            for r in range(max_ties + 1)]

