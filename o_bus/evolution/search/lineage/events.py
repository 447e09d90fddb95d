"""The lineage of a search as immutable, versioned events.

Every child (its parents, operator, genome, source and diff, island, generation), every
discarded child with its reason, every evaluation (fitness, descriptors, cost, sandbox outcome,
the dataset's identity), every generation's surviving population, every migration, the
deployment of the best version and its hand-off to the arbiter is one event on
``o.lineage.<agent>.<search>``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "BestDeployed",
    "ChildCreated",
    "ChildDiscarded",
    "Evaluated",
    "GenerationClosed",
    "HandedOff",
    "LineageEvent",
    "Migrated",
    "SearchFinished",
    "SearchStarted",
    "event_adapter",
]


class _Lineage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    search: str


class SearchStarted(_Lineage):
    kind: Literal["search_started"] = "search_started"
    agent: str
    config: dict[str, Any]
    dataset: str  # identity: sha256 of its canonical content
    dataset_origin: str
    descriptors: list[dict[str, Any]]  # the archive's grid: name, low, high, bins, log
    root: str  # child id of the starting version


class ChildCreated(_Lineage):
    kind: Literal["child_created"] = "child_created"
    child: str
    parents: list[str]
    operator: str
    detail: str = ""  # what the operator did, in words
    island: int
    generation: int
    genome: dict[str, Any] | None
    digest: str  # sha256 of the source: the code version it would be
    source: str
    diff: str = ""  # unified diff from the first parent


class ChildDiscarded(_Lineage):
    kind: Literal["child_discarded"] = "child_discarded"
    child: str
    reason: str


class Evaluated(_Lineage):
    kind: Literal["evaluated"] = "evaluated"
    child: str
    outcome: Literal["ok", "invalid", "failed", "pruned", "killed"]
    fitness: float | None  # only for outcome "ok": an incomplete evaluation has no score
    descriptors: dict[str, float] = Field(default_factory=dict)
    figures: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    dataset: str
    cached_from: str | None = None  # the child whose identical code was already evaluated


class GenerationClosed(_Lineage):
    kind: Literal["generation_closed"] = "generation_closed"
    generation: int
    populations: list[list[str]]  # per island, the survivors


class Migrated(_Lineage):
    kind: Literal["migrated"] = "migrated"
    generation: int
    child: str
    from_island: int
    to_island: int
    replaced: str | None


class BestDeployed(_Lineage):
    kind: Literal["best_deployed"] = "best_deployed"
    child: str
    code_version: str
    fitness: float


class HandedOff(_Lineage):
    """Whether the deployed best version went to the evolution arbiter, and why (or why not)."""

    kind: Literal["handed_off"] = "handed_off"
    code_version: str
    handed: bool
    reason: str
    baseline_fitness: float | None
    best_fitness: float
    margin: float


class SearchFinished(_Lineage):
    kind: Literal["search_finished"] = "search_finished"
    reason: str
    best: str | None
    best_fitness: float | None
    evaluations: int


LineageEvent = Annotated[
    SearchStarted
    | ChildCreated
    | ChildDiscarded
    | Evaluated
    | GenerationClosed
    | Migrated
    | BestDeployed
    | HandedOff
    | SearchFinished,
    Field(discriminator="kind"),
]
event_adapter: TypeAdapter[LineageEvent] = TypeAdapter(LineageEvent)
