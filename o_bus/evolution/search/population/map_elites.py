"""A MAP-Elites archive: the best version found in each cell of a grid of behaviour descriptors.

Each descriptor has a range and a number of bins; a version lands in the cell of its
descriptors and stays there while no better one lands in the same cell. Ties are broken by
a fixed order of child ids, so the archive does not depend on the order evaluations complete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Archive", "DescriptorSpec", "Elite", "default_ranges"]


@dataclass(frozen=True, slots=True)
class DescriptorSpec:
    name: str
    low: float
    high: float
    bins: int
    log: bool = False  # bin on a log scale (latency, code size)

    def bin(self, value: float) -> int:
        low, high, v = self.low, self.high, value
        if self.log:
            low, high, v = math.log1p(low), math.log1p(high), math.log1p(max(0.0, value))
        if high <= low:
            return 0
        share = (v - low) / (high - low)
        return int(min(self.bins - 1, max(0, math.floor(share * self.bins))))


def default_ranges(name: str, bins: int) -> DescriptorSpec:
    """Ranges for the built-in descriptors (``genome.<field>`` ranges come from the genome)."""
    if name == "code_size":
        return DescriptorSpec(name, 0, 64 * 1024, bins, log=True)
    if name == "latency":
        return DescriptorSpec(name, 0, 50.0, bins, log=True)  # mean ms per request
    return DescriptorSpec(name, 0.0, 1.0, bins)


@dataclass(frozen=True, slots=True)
class Elite:
    child: str
    fitness: float
    descriptors: tuple[tuple[str, float], ...]


class Archive:
    """Cells of the grid, each holding its elite."""

    def __init__(self, specs: list[DescriptorSpec]) -> None:
        self.specs = specs
        self.cells: dict[tuple[int, ...], Elite] = {}

    def cell_of(self, descriptors: dict[str, float]) -> tuple[int, ...]:
        return tuple(spec.bin(descriptors.get(spec.name, 0.0)) for spec in self.specs)

    def offer(self, child: str, fitness: float, descriptors: dict[str, float]) -> bool:
        """Place ``child`` if its cell is empty or it beats the cell's elite; True if placed."""
        cell = self.cell_of(descriptors)
        current = self.cells.get(cell)
        if current is not None and (current.fitness, _rank(current.child)) >= (
            fitness,
            _rank(child),
        ):
            return False
        self.cells[cell] = Elite(child, fitness, tuple(sorted(descriptors.items())))
        return True

    def snapshot(self) -> dict[str, tuple[str, float]]:
        """``"i,j" -> (child, fitness)``: what tests compare and the CLI shows."""
        return {
            ",".join(map(str, cell)): (elite.child, elite.fitness)
            for cell, elite in sorted(self.cells.items())
        }


def _rank(child: str) -> tuple[int, ...] | str:
    # Higher rank wins; for equal fitness the earlier (smaller) id should win, so negate.
    return tuple(-ord(c) for c in child)
