"""Selection by diversity: the k domains whose mixture has the highest (max) or lowest (min)
predicted coefficient on a domain matrix (divcoeff.domains), or k drawn at random (seeded).

Search: exact (every one of the C(n, k) sets) when C(n, k) <= `exact_limit`, else greedy: the
best pair (or single domain for k = 1), then repeatedly the domain that moves the predicted
coefficient most the asked way, then single swaps (one chosen domain for one left out) while
one improves it. The greedy result is a local optimum, not necessarily the best set.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass

import numpy as np

from divcoeff.seeding import numpy_rng

SELECT = ("max", "min", "random")


def mixture_coefficient(D: np.ndarray, idx) -> float:
    """Expected coefficient of a mixture of the domains `idx` (a domain uniformly, then a task in
    it): the mean of D over all k^2 ordered pairs of the chosen domains."""
    idx = np.asarray(idx, dtype=np.int64)
    return float(np.asarray(D, dtype=np.float64)[np.ix_(idx, idx)].mean())


class SelectionError(ValueError):
    """A selection that cannot be made (names the set or option)."""


@dataclass(frozen=True)
class Selection:
    domains: tuple[str, ...]   # sorted
    predicted: float
    search: str                # exact | greedy | random


def select_domains(D: np.ndarray, names: list[str], k: int, how: str, *, pool: list[str] | None = None,
                   exact_limit: int = 20000, top: int = 1, seed: int = 0, draw: int = 0,
                   where: str = "select") -> list[Selection]:
    """The best `top` sets of `k` domains of `pool` (default: every domain of the matrix) by `how`;
    `random`: one seeded draw (seed, draw). Greedy search returns one set."""
    if how not in SELECT:
        raise SelectionError(f"{where}: select must be one of {', '.join(SELECT)}, got {how!r}")
    index = {n: i for i, n in enumerate(names)}
    pool = sorted(names) if pool is None else sorted(dict.fromkeys(pool))
    unknown = [p for p in pool if p not in index]
    if unknown:
        raise SelectionError(f"{where}: domain(s) {unknown} are not in the domain matrix (it has {', '.join(names)})")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise SelectionError(f"{where}: domains must be a number k >= 1 for a selection, got {k!r}")
    if k > len(pool):
        raise SelectionError(f"{where}: domains {k} is more than the {len(pool)} eligible domain(s) "
                             f"({', '.join(pool)})")
    if top < 1:
        raise SelectionError(f"{where}: top must be >= 1, got {top}")
    D = np.asarray(D, dtype=np.float64)
    ids = [index[p] for p in pool]
    if any(np.isnan(D[i, i]) for i in ids):
        bad = [p for p in pool if np.isnan(D[index[p], index[p]])]
        raise SelectionError(f"{where}: domain(s) {bad} have no within-domain distance in the matrix "
                             "(fewer than 2 tasks); raise domains.tasks or leave them out of the pool")

    def value(combo) -> float:
        return mixture_coefficient(D, combo)

    def result(combo, search) -> Selection:
        return Selection(tuple(sorted(names[i] for i in combo)), value(combo), search)

    if how == "random":
        rng = numpy_rng(seed, "select-random", k, draw)
        return [result(rng.permutation(ids)[:k].tolist(), "random")]
    sign = 1.0 if how == "max" else -1.0
    if math.comb(len(ids), k) <= exact_limit:
        best = heapq.nlargest(top, itertools.combinations(ids, k),
                              key=lambda c: (sign * value(c), tuple(-i for i in c)))
        return [result(c, "exact") for c in best]
    return [result(_greedy(D, ids, k, sign), "greedy")]


def _greedy(D: np.ndarray, ids: list[int], k: int, sign: float) -> list[int]:
    def score(c) -> float:
        return sign * mixture_coefficient(D, c)

    start = 1 if k == 1 else 2
    chosen = list(max(itertools.combinations(ids, start), key=score))
    while len(chosen) < k:
        chosen.append(max((i for i in ids if i not in chosen), key=lambda i: score(chosen + [i])))
    improved = True
    while improved:  # single swaps; each strictly raises the score, so this ends
        improved = False
        current = score(chosen)
        for pos, out in itertools.product(range(k), [i for i in ids if i not in chosen]):
            trial = chosen[:pos] + [out] + chosen[pos + 1:]
            if score(trial) > current + 1e-15:
                chosen, improved = trial, True
                break
    return chosen


def check_select_specs(train_sets, where: str = "config") -> None:
    """Refuse, before any job, a train set whose `select` cannot work: it needs `domains: k` (a
    number), one benchmark and tasks drawn per domain (mixture_over: domain)."""
    for name, spec in train_sets.items():
        how = spec.get("select")
        if not how:
            continue
        field = f"{where}: train_sets.{name}"
        k = spec.get("domains")
        if isinstance(k, bool) or not isinstance(k, int):
            raise SelectionError(f"{field}.select: {how} needs domains: k (a number of domains), got domains: {k!r}")
        if len(spec.get("benchmarks", [])) != 1:
            raise SelectionError(f"{field}.select: {how} chooses domains of one benchmark, got benchmarks "
                                 f"{list(spec.get('benchmarks', []))}")
        if spec.get("mixture_over", "domain") != "domain":
            raise SelectionError(f"{field}.select: {how} needs mixture_over: domain, got {spec['mixture_over']!r}")
