"""What `o-bus bench evolution` measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from o_bus_bench.stats import LevelResult

from .shadows import ShadowFigures
from .swap_load import SwapResult

__all__ = ["MAX_SHADOW_COST", "EvolutionReport", "ShadowRow"]

MAX_SHADOW_COST: Final = 0.10  # one shadow may cost live at most this share of its throughput


@dataclass(slots=True)
class ShadowRow:
    """Live's figures at one concurrency with ``shadows`` shadows scheduled as ``scheduling``
    (a key of :data:`~o_bus_bench.evolution.shadows.SCHEDULING`)."""

    concurrency: int
    shadows: int
    scheduling: str | None  # None: no shadows
    live: LevelResult
    figures: ShadowFigures | None = None

    def shadow_cpu(self) -> float:
        return sum(v for k, v in self.live.cpu_percent.items() if k.startswith("shadow-"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "shadows": self.shadows,
            "scheduling": self.scheduling,
            "live": self.live.as_dict(),
            "shadow_cpu_percent": round(self.shadow_cpu(), 1),
            "shadow_coverage": round(self.figures.kept_up(), 3) if self.figures else None,
            "figures": asdict(self.figures) if self.figures else None,
        }


@dataclass(slots=True)
class EvolutionReport:
    machine: dict[str, Any]
    settings: dict[str, Any]
    raw: list[LevelResult] = field(default_factory=list)
    rows: list[ShadowRow] = field(default_factory=list)
    swap: SwapResult | None = None

    def baseline(self, concurrency: int) -> ShadowRow | None:
        return next((r for r in self.rows if r.concurrency == concurrency and r.shadows == 0), None)

    def cost(self, row: ShadowRow) -> float | None:
        """Share of live's throughput lost against no shadows at the same concurrency."""
        base = self.baseline(row.concurrency)
        if base is None or base.live.rps <= 0:
            return None
        return 1.0 - row.live.rps / base.live.rps

    def one_shadow_target_met(self, scheduling: str) -> bool | None:
        costs = [self.cost(r) for r in self.rows if r.shadows == 1 and r.scheduling == scheduling]
        known = [c for c in costs if c is not None]
        return all(c <= MAX_SHADOW_COST for c in known) if known else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "target": {"max_one_shadow_cost": MAX_SHADOW_COST},
            "raw": [r.as_dict() for r in self.raw],
            "rows": [
                {**r.as_dict(), "cost": None if (c := self.cost(r)) is None else round(c, 4)}
                for r in self.rows
            ],
            "swap": self.swap.as_dict() if self.swap else None,
        }
