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


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks, from /proc (None where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name may contain spaces or parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> int | None:
    """Process CPU ticks of the whole machine, all cores (None where /proc is unavailable)."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # "cpu user nice system idle iowait irq softirq steal ...": user + nice + system is what
    # processes ran; interrupt work (loopback networking) is left out, as it is per process.
    return int(fields[1]) + int(fields[2]) + int(fields[3])


class CpuSampler:
    """CPU used between :meth:`start` and :meth:`stop`, in % of one core.

    Reports each named process, ``machine`` (every process, all cores) and ``other``: what
    processes outside the benchmark used meanwhile, which shows when the figures are disturbed.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._before: dict[str, int] = {}

    def _sample(self) -> dict[str, int]:
        found = {name: cpu_ticks(pid) for name, pid in self.pids.items()}
        found["machine"] = _machine_ticks()
        return {name: ticks for name, ticks in found.items() if ticks is not None}

    def start(self) -> None:
        self._before = self._sample()

    def stop(self, seconds: float, measured: tuple[str, ...] = ()) -> dict[str, float]:
        """Usage by name; ``other`` is ``machine`` minus ``measured`` (default: every pid)."""
        if seconds <= 0:
            return {}
        after = self._sample()
        usage = {
            name: round(100.0 * (after[name] - before) / self._tick / seconds, 1)
            for name, before in self._before.items()
            if name in after
        }
        own = measured or tuple(self.pids)
        if "machine" in usage and all(name in usage for name in own):
            usage["other"] = round(max(0.0, usage["machine"] - sum(usage[n] for n in own)), 1)
        return usage
