"""How surprising a kernel's contrast is under relabellings of its skills: the permutation p-value and the smallest
p a layout of skills can reach at all (with any kernel, and when transfer follows one label alone).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from functools import lru_cache

import numpy as np

from ntkeval.report.layout import Layout
from ntkeval.report.two_way import TwoWay

ENUMERATE_UP_TO = 8    # skills: 8! = 40320 relabellings are evaluated exactly, beyond that `permutations` random ones


def permutation_p(kernel: np.ndarray, layout: Layout, diff: float, permutations: int,
                  rng: np.random.Generator) -> tuple[float, str]:
    """Two-sided p of the observed a - b among relabellings of the skills, and how many were used.

    A relabelling moves a skill's group and surface together (they are one label). Up to ENUMERATE_UP_TO skills
    every distinct arrangement of A and B is evaluated once, weighted by how many of the n! relabellings give it;
    beyond that, `permutations` random relabellings. Arrangements for which the layout cannot separate a from b
    (possible only with missing entries) are left out of both counts.
    """
    n = len(layout.group)
    if n <= ENUMERATE_UP_TO:
        orders, weights = _arrangements(tuple(layout.group.tolist()),
                                        None if layout.surface is None else tuple(layout.surface.tolist()))
    else:
        orders = rng.permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
        weights = np.ones(permutations, dtype=np.int64)
    surface = None if layout.surface is None else layout.surface[orders]
    values = TwoWay(kernel).contrasts(layout.group[orders], surface)
    valid = ~np.isnan(values)
    # floating sums of the same entries in another order differ in the last bits: a tie is a tie
    extreme = int(weights[valid & (np.abs(values) >= abs(diff) - 1e-9 * max(1.0, abs(diff)))].sum())
    total = int(weights[valid].sum())
    if n <= ENUMERATE_UP_TO:  # the identity is among them, so extreme >= 1
        return extreme / total, f"all {total} relabellings ({int(valid.sum())} distinct)"
    return (1 + extreme) / (1 + total), f"{total} random relabellings"


@lru_cache(maxsize=64)
def _arrangements(group: tuple[int, ...], surface: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """One relabelling per distinct (A, B) arrangement of n! and how many relabellings give it.

    Two relabellings give the same A and B exactly when they induce the same partitions of the positions into
    groups and into surfaces; a partition is written canonically as, per position, the first position with the
    same label.
    """
    n = len(group)
    orders = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    keys = [_first_same(np.asarray(group)[orders])]
    if surface is not None:
        keys.append(_first_same(np.asarray(surface)[orders]))
    _, first, counts = np.unique(np.concatenate(keys, axis=1), axis=0, return_index=True, return_counts=True)
    return orders[first].astype(np.intp), counts.astype(np.int64)


def _first_same(labels: np.ndarray) -> np.ndarray:
    """(R, n) labels -> (R, n): for each position, the first position holding the same label."""
    return np.argmax(labels[:, :, None] == labels[:, None, :], axis=2).astype(np.int8)


def min_attainable_p(layout: Layout) -> float:
    """The smallest two-sided p any kernel can give with this layout (complete kernel, exact test).

    The observed labelling always ties with itself under every relabelling that leaves A and B as they are (the
    layout's automorphisms), and with its mirror under every one that swaps A and B (a - b -> b - a, same |.|);
    every other arrangement can be less extreme. So min p = (automorphisms + swaps) / n!.
    """
    same, swapped = _symmetries(layout)
    return (same + swapped) / math.factorial(len(layout.group))


def one_label_p(layout: Layout) -> float:
    """The p of a noise-free kernel whose transfer follows one label alone: for arith the larger of the values for
    "operation alone" and "format alone" (so both directions can be told apart below it); for domains, which
    have one label, min_attainable_p.

    Such a kernel is exactly r + c + beta * [same operation]. Every relabelling that keeps the partition into
    operations keeps that indicator, so gives the same a - b, and every one that turns the format partition into
    it gives b - a: they all tie with the observed. On a 3 x 2 grid "operation alone" ties 4 of its 60
    arrangements (p = 1/15) and "format alone" 6 (p = 1/10), though a kernel where operation and format pull
    opposite ways can reach 1/60.
    """
    if layout.surface is None:
        return min_attainable_p(layout)
    ways = []
    for label, other in ((layout.group, layout.surface), (layout.surface, layout.group)):
        keep = _partition_symmetries(label)
        onto = keep if _block_sizes(label) == _block_sizes(other) else 0
        ways.append(keep + onto)
    return max(ways) / math.factorial(len(layout.group))


def _block_sizes(labels: np.ndarray) -> list[int]:
    return sorted(Counter(labels.tolist()).values())


def _partition_symmetries(labels: np.ndarray) -> int:
    """Permutations that keep a partition: shuffle within blocks, and trade whole blocks of equal size."""
    sizes = _block_sizes(labels)
    return math.prod(math.factorial(s) for s in sizes) * math.prod(math.factorial(c) for c in Counter(sizes).values())


def _symmetries(layout: Layout) -> tuple[int, int]:
    """(relabellings that keep A and B, relabellings that swap them), counted from the labels' structure."""
    if layout.surface is None:
        # A is "same domain", B its complement: no relabelling turns one into the other (a union of cliques is
        # never isomorphic to its complement, a complete multipartite graph, for n >= 2)
        return _partition_symmetries(layout.group), 0
    incidence = np.zeros((layout.group.max() + 1, layout.surface.max() + 1), dtype=bool)
    incidence[layout.group, layout.surface] = True
    same = _isomorphisms(incidence, incidence)
    swapped = _isomorphisms(incidence.T, incidence) if incidence.shape[0] == incidence.shape[1] else 0
    return same, swapped


def _isomorphisms(source: np.ndarray, target: np.ndarray) -> int:
    """Pairs (row permutation, column permutation) that turn the 0/1 table `source` into `target`.

    A relabelling of arith skills that keeps "same operation" and "same format" maps operations to operations and
    formats to formats, so it is such a pair on the operation x format table of which skills exist. For each row
    permutation the column permutations that fit are counted: columns must map onto equal columns.
    """
    if source.shape[0] > source.shape[1]:
        return _isomorphisms(source.T, target.T)
    if source.shape[0] > ENUMERATE_UP_TO:   # at least 81 skills; only an upper bound is cheap: all pairs
        return math.factorial(source.shape[0]) * math.factorial(source.shape[1])
    wanted = Counter(map(bytes, target.T))
    count = 0
    for rows in itertools.permutations(range(source.shape[0])):
        columns = Counter(map(bytes, source[list(rows)].T))
        if columns == wanted:
            count += math.prod(math.factorial(k) for k in wanted.values())
    return count

