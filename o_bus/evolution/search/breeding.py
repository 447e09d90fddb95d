"""Making one generation's children: tournament selection of parents, an operator, a child.

Every draw comes from a generator seeded by (seed, generation, island, slot), so the same
lineage always breeds the same children; a child already recorded is taken from the lineage.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from o_bus.evolution.search.config import SearchConfig
from o_bus.evolution.search.lineage.events import ChildDiscarded, LineageEvent
from o_bus.evolution.search.lineage.projection import SearchProjection
from o_bus.evolution.search.operators.base import NoChild, Operator, Parent, Proposal
from o_bus.evolution.search.population.selection import tournament

__all__ = ["ROOT", "Brood", "breed", "parent_of"]

ROOT = "root"
# Per island: (child id, parents, operator, proposal or None when the operator made nothing)
Brood = dict[int, list[tuple[str, list[str], str, Proposal | None]]]


async def breed(
    state: SearchProjection,
    config: SearchConfig,
    operators: list[Operator],
    generation: int,
    budget: int,
    record: Callable[[LineageEvent], Awaitable[None]],
) -> Brood:
    """Every island's children of ``generation`` (at most ``budget``): (id, parents,
    operator, proposal). An operator that makes nothing is recorded as a discarded child."""
    out: Brood = {}
    fitness = state.fitness
    search = state.started.search if state.started else ""
    slots = 0
    for island, population in enumerate(state.populations):
        members = [c for c in population if c in fitness] or [ROOT]
        out[island] = []
        for slot in range(config.population):
            if slots >= budget:
                break
            slots += 1
            child = f"g{generation}.i{island}.c{slot}"
            recorded = state.children.get(child)
            if recorded is not None:
                proposal = Proposal(recorded.source, recorded.genome, recorded.detail)
                out[island].append((child, recorded.parents, recorded.operator, proposal))
                continue
            rng = random.Random(f"{config.seed}:{generation}:{island}:{slot}")
            usable = [o for o in operators if o.arity == 1 or len(members) > 1]
            operator = rng.choice(usable or operators)
            parents = [tournament(members, fitness, config.tournament, rng)]
            if operator.arity == 2:
                others = [m for m in members if m != parents[0]] or members
                parents.append(tournament(others, fitness, config.tournament, rng))
            try:
                made: Proposal | None = await operator.propose(
                    [parent_of(state, p) for p in parents], rng
                )
            except NoChild as err:
                made = None
                if child not in state.discarded:
                    await record(
                        ChildDiscarded(
                            search=search,
                            child=child,
                            reason=f"{operator.name}: {err}",
                        )
                    )
            out[island].append((child, parents, operator.name, made))
    return out


def parent_of(state: SearchProjection, child: str) -> Parent:
    created = state.children[child]
    evaluation = state.evaluations.get(child)
    feedback = ""
    if evaluation is not None:
        feedback = evaluation.reason or str(evaluation.figures.get("last_failure") or "")
    return Parent(
        child,
        created.source,
        created.genome,
        evaluation.fitness if evaluation else None,
        feedback,
    )
