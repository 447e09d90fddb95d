"""A search's lineage and archive as JSON: what `o-bus evolve lineage --json` prints and the
web console draws (the tree of children, the MAP-Elites grid with fitness)."""

from __future__ import annotations

from typing import Any

from o_bus.evolution.search.lineage.projection import SearchProjection

__all__ = ["archive_json", "lineage_json"]


def _outcome(state: SearchProjection, child: str) -> str:
    if child in state.evaluations:
        return state.evaluations[child].outcome
    return "discarded" if child in state.discarded else "pending"


def lineage_json(search: str, state: SearchProjection) -> dict[str, Any]:
    """Every child with its parents, operator, outcome and fitness; the best and deployed."""
    return {
        "search": search,
        "children": [
            {
                "child": c.child,
                "parents": c.parents,
                "operator": c.operator,
                "detail": c.detail,
                "island": c.island,
                "generation": c.generation,
                "genome": c.genome,
                "digest": c.digest,
                "outcome": _outcome(state, c.child),
                "fitness": state.fitness.get(c.child),
                "reason": state.discarded.get(c.child)
                or (state.evaluations[c.child].reason if c.child in state.evaluations else None),
            }
            for c in state.children.values()
        ],
        "best": state.best(),
        "deployed": state.deployed.code_version if state.deployed else None,
    }


def archive_json(state: SearchProjection) -> dict[str, Any] | None:
    """The MAP-Elites grid: its axes and each occupied cell's elite and fitness."""
    archive = state.archive
    if archive is None:
        return None
    return {
        "axes": [{"name": s.name, "bins": s.bins} for s in archive.specs],
        "cells": [
            {"cell": list(cell), "child": elite.child, "fitness": elite.fitness}
            for cell, elite in sorted(archive.cells.items())
        ],
    }
