"""The state of a search as a fold of its lineage events: children, evaluations, the
population of each island, the MAP-Elites archive and the best version so far.

The engine resumes from this fold after a crash, ``o-bus evolve lineage`` and ``archive``
show it, and folding the same events always gives the same archive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from o_bus.evolution.search.lineage.events import (
    BestDeployed,
    ChildCreated,
    ChildDiscarded,
    Evaluated,
    GenerationClosed,
    HandedOff,
    LineageEvent,
    Migrated,
    SearchFinished,
    SearchStarted,
)
from o_bus.evolution.search.population.map_elites import Archive, DescriptorSpec

__all__ = ["SearchProjection", "project"]


@dataclass
class SearchProjection:
    started: SearchStarted | None = None
    children: dict[str, ChildCreated] = field(default_factory=dict)
    discarded: dict[str, str] = field(default_factory=dict)
    evaluations: dict[str, Evaluated] = field(default_factory=dict)
    populations: list[list[str]] = field(default_factory=list)
    closed_generation: int = -1
    migrations: list[Migrated] = field(default_factory=list)
    archive: Archive | None = None
    deployed: BestDeployed | None = None
    handed_off: HandedOff | None = None
    finished: SearchFinished | None = None
    duplicates: int = 0  # events seen twice for the same child (should stay 0)

    @property
    def fitness(self) -> dict[str, float]:
        """Scored children: only complete evaluations have a fitness."""
        return {
            c: e.fitness
            for c, e in self.evaluations.items()
            if e.outcome == "ok" and e.fitness is not None
        }

    def best(self) -> tuple[str, float] | None:
        scored = self.fitness
        if not scored:
            return None
        child = min(scored, key=lambda c: (-scored[c], c))
        return child, scored[child]

    def apply(self, event: LineageEvent) -> None:
        if isinstance(event, SearchStarted):
            self.started = event
            self.archive = Archive([DescriptorSpec(**d) for d in event.descriptors])
        elif isinstance(event, ChildCreated):
            self.duplicates += event.child in self.children
            self.children[event.child] = event
        elif isinstance(event, ChildDiscarded):
            self.discarded[event.child] = event.reason
        elif isinstance(event, Evaluated):
            self.duplicates += event.child in self.evaluations
            self.evaluations[event.child] = event
            if self.archive is not None and event.outcome == "ok" and event.fitness is not None:
                self.archive.offer(event.child, event.fitness, event.descriptors)
        elif isinstance(event, GenerationClosed):
            self.populations = [list(p) for p in event.populations]
            self.closed_generation = event.generation
        elif isinstance(event, Migrated):
            self.migrations.append(event)
        elif isinstance(event, BestDeployed):
            self.deployed = event
        elif isinstance(event, HandedOff):
            self.handed_off = event
        elif isinstance(event, SearchFinished):
            self.finished = event


def project(events: Iterable[LineageEvent]) -> SearchProjection:
    """Fold ``events`` into the search's state."""
    projection = SearchProjection()
    for event in events:
        projection.apply(event)
    return projection
