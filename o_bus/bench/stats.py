"""Figures the benchmark reports: latency percentiles, throughput, per-process CPU."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CpuSampler", "LevelResult", "percentile", "ratio"]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(fraction * len(sorted_values) + 0.999999)))
    return sorted_values[rank - 1]


def ratio(project: float, raw: float) -> float:
    """``project / raw``, 0.0 when the raw figure is missing."""
    return project / raw if raw > 0 else 0.0


@dataclass(slots=True)
class LevelResult:
    """One closed-loop run at one concurrency: replies per second and latency in ms."""

    concurrency: int
    seconds: float
    completed: int
    errors: int
    timeouts: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelResult:
        return cls(**data)


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks, from /proc (None where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name may contain spaces or parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


class CpuSampler:
    """CPU used by named processes between :meth:`start` and :meth:`stop`, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._before: dict[str, int] = {}

    def start(self) -> None:
        self._before = {}
        for name, pid in self.pids.items():
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                self._before[name] = ticks

    def stop(self, seconds: float) -> dict[str, float]:
        usage: dict[str, float] = {}
        for name, before in self._before.items():
            after = _cpu_ticks(self.pids[name])
            if after is not None and seconds > 0:
                usage[name] = round(100.0 * (after - before) / self._tick / seconds, 1)
        return usage
