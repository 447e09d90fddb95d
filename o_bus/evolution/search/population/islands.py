"""Islands: separate populations that exchange their best members every few generations."""

from __future__ import annotations

from collections.abc import Mapping

from o_bus.evolution.search.population.selection import ranked

__all__ = ["Migration", "apply_migrations", "migrations"]

Migration = tuple[str, int, int, str | None]  # (child, from island, to island, replaced)


def migrations(
    populations: list[list[str]], fitness: Mapping[str, float], migrants: int
) -> list[Migration]:
    """Ring migration: each island's ``migrants`` best go to the next island, replacing its
    worst members (never one of the arrivals). Computed on the populations before any move."""
    moves: list[Migration] = []
    if len(populations) < 2 or migrants <= 0:
        return moves
    for source, members in enumerate(populations):
        target = (source + 1) % len(populations)
        best = ranked(members, fitness)[:migrants]
        worst = list(reversed(ranked(populations[target], fitness)))
        for index, child in enumerate(best):
            if child in populations[target]:
                continue
            replaced = worst[index] if index < len(worst) else None
            moves.append((child, source, target, replaced))
    return moves


def apply_migrations(populations: list[list[str]], moves: list[Migration]) -> list[list[str]]:
    out = [list(p) for p in populations]
    for child, _, target, replaced in moves:
        if replaced is not None and replaced in out[target]:
            out[target][out[target].index(replaced)] = child
        elif child not in out[target]:
            out[target].append(child)
    return out
