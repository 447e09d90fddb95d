"""What one benchmark run measured, and how it compares with the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from o_bus_bench.replay import ReplayRow
from o_bus_bench.stats import LevelResult, ratio

__all__ = [
    "MIN_OFFLINE_RATIO",
    "MIN_REPLAY_RATIO",
    "TARGET_P99_MS",
    "TARGET_RPS",
    "BenchReport",
    "LevelPair",
    "ServerRun",
]

TARGET_RPS: Final = 5000.0
TARGET_P99_MS: Final = 50.0
MIN_REPLAY_RATIO: Final = 0.5
MIN_OFFLINE_RATIO: Final = 3.0  # replay_history of records in memory vs the JetStream rebuild


@dataclass(slots=True)
class LevelPair:
    """The project path and the raw floor at one concurrency, from the same server."""

    project: LevelResult
    raw: LevelResult

    @property
    def concurrency(self) -> int:
        return self.project.concurrency

    @property
    def ratio(self) -> float:
        return ratio(self.project.rps, self.raw.rps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "project": self.project.as_dict(),
            "raw": self.raw.as_dict(),
            "ratio": round(self.ratio, 3),
        }


def best(results: list[LevelResult]) -> LevelResult | None:
    """The highest throughput whose p99 meets the target, else the highest throughput."""
    if not results:
        return None
    within = [result for result in results if result.p99_ms < TARGET_P99_MS]
    return max(within or results, key=lambda result: result.rps)


@dataclass(slots=True)
class ServerRun:
    """All concurrency levels against one server setting (``sync_interval``)."""

    sync_interval: str | None
    levels: list[LevelPair] = field(default_factory=list)
    nodes: int = 1  # > 1: a local JetStream cluster, every stream with that many replicas

    @property
    def label(self) -> str:
        sync = f"sync_interval={self.sync_interval}" if self.sync_interval else "default sync"
        return sync if self.nodes == 1 else f"{self.nodes}-node cluster, R{self.nodes}, {sync}"

    def best_project(self) -> LevelResult | None:
        return best([pair.project for pair in self.levels])

    def best_raw(self) -> LevelResult | None:
        return best([pair.raw for pair in self.levels])

    def target_met(self) -> bool:
        top = self.best_project()
        return top is not None and top.rps >= TARGET_RPS and top.p99_ms < TARGET_P99_MS

    def as_dict(self) -> dict[str, Any]:
        top, top_raw = self.best_project(), self.best_raw()
        return {
            "sync_interval": self.sync_interval,
            "nodes": self.nodes,
            "levels": [pair.as_dict() for pair in self.levels],
            "best": {
                "project": top.as_dict() if top else None,
                "raw": top_raw.as_dict() if top_raw else None,
                "ratio": round(ratio(top.rps, top_raw.rps), 3) if top and top_raw else None,
                "target_met": self.target_met(),
            },
        }


@dataclass(slots=True)
class BenchReport:
    machine: dict[str, Any]
    settings: dict[str, Any]
    runs: list[ServerRun] = field(default_factory=list)
    replay: list[ReplayRow] = field(default_factory=list)

    def replay_target_met(self) -> bool | None:
        if not self.replay:
            return None
        largest = max(self.replay, key=lambda row: row.events)
        return largest.ratio >= MIN_REPLAY_RATIO

    def offline_target_met(self) -> bool | None:
        if not self.replay:
            return None
        largest = max(self.replay, key=lambda row: row.events)
        return largest.offline_ratio >= MIN_OFFLINE_RATIO

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "targets": {
                "rps": TARGET_RPS,
                "p99_ms": TARGET_P99_MS,
                "replay_ratio": MIN_REPLAY_RATIO,
                "offline_replay_ratio": MIN_OFFLINE_RATIO,
            },
            "runs": [run.as_dict() for run in self.runs],
            "replay": [row.as_dict() for row in self.replay],
            "replay_target_met": self.replay_target_met(),
        }
