"""Genome mutation: move some tunable parameters within their bounds."""

from __future__ import annotations

import random

from o_bus.evolution.search.genome import GenomeSpace, write_genome
from o_bus.evolution.search.operators.base import NoChild, Parent, Proposal

__all__ = ["GenomeMutation", "RandomGenome"]


class GenomeMutation:
    name = "genome"
    arity = 1

    def __init__(self, space: GenomeSpace) -> None:
        self.space = space

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal:
        parent = parents[0]
        values = parent.genome or self.space.defaults()
        child = self.space.mutate(values, rng)
        changed = sorted(k for k in child if child[k] != values.get(k))
        if not changed:
            raise NoChild("genome mutation changed nothing")
        detail = ", ".join(f"{k}: {values.get(k)!r} -> {child[k]!r}" for k in changed)
        return Proposal(write_genome(parent.source, child), child, detail)


class RandomGenome:
    """A genome drawn uniformly from the whole space, ignoring the parent: random search,
    the baseline a search must beat with the same budget."""

    name = "random"
    arity = 1

    def __init__(self, space: GenomeSpace) -> None:
        self.space = space

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal:
        values = self.space.sample(rng)
        return Proposal(write_genome(parents[0].source, values), values, "random genome")
