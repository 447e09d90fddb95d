"""Choosing parents and survivors: tournament selection and elitism, seeded."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

__all__ = ["ranked", "survivors", "tournament"]


def ranked(children: Sequence[str], fitness: Mapping[str, float]) -> list[str]:
    """Best first; equal fitness in id order, so the order never depends on timing."""
    return sorted(children, key=lambda c: (-fitness[c], c))


def tournament(
    population: Sequence[str], fitness: Mapping[str, float], size: int, rng: random.Random
) -> str:
    """The fittest of ``size`` members drawn at random (with replacement)."""
    drawn = [population[rng.randrange(len(population))] for _ in range(size)]
    return ranked(drawn, fitness)[0]


def survivors(
    previous: Sequence[str],
    children: Sequence[str],
    fitness: Mapping[str, float],
    size: int,
    elites: int,
) -> list[str]:
    """The next population: the ``elites`` best of the previous one, then the best children,
    then the rest of the previous population if children were too few."""
    kept = ranked([c for c in previous if c in fitness], fitness)[:elites]
    for candidate in ranked([c for c in children if c in fitness], fitness):
        if len(kept) >= size:
            break
        if candidate not in kept:
            kept.append(candidate)
    for candidate in ranked([c for c in previous if c in fitness], fitness):
        if len(kept) >= size:
            break
        if candidate not in kept:
            kept.append(candidate)
    return kept
