"""What one configuration measured: its kills, the load, RSS and CPU, and the log's state."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from o_bus_bench.stats import percentile

__all__ = ["ConfigResult", "KillResult"]


@dataclass(slots=True)
class KillResult:
    """One ``kill -9`` of the active process and what followed."""

    victim_pid: int
    recovery_ms: float | None  # kill -> first reply sent by the new active
    active_ms: float | None  # kill -> first heartbeat of the new active
    new_pid: int | None
    # Requests whose first timeout or error reply came after this kill (before the next one):
    resent_ok: int  # ... and that succeeded when re-sent with the same id
    failed: int  # ... and that never succeeded
    # Attempts after this kill (before the next one):
    timeouts: int  # timed out
    error_replies: int  # answered with an error


@dataclass(slots=True)
class ConfigResult:
    """One configuration: its kills, the load, RSS, and whether the log is intact."""

    name: str
    standby: bool
    policy: dict[str, Any]
    kills: list[KillResult]
    requests: int
    succeeded: int
    peak_in_flight: int
    shed: int  # arrivals not sent: too many requests in flight
    seconds: float
    unattributed_failures: int  # failed attempts before the first kill
    rss_mb: dict[str, float]  # per role: max over processes of their largest heartbeat RSS
    service_rss_mb: dict[str, float]
    agent_processes: int
    log_events: int
    log_problems: list[str]
    cpu_percent: dict[str, float]
    loadavg: list[float]
    replayed: list[int] = field(default_factory=list)  # events replayed by each new active

    @property
    def recoveries_ms(self) -> list[float]:
        return sorted(k.recovery_ms for k in self.kills if k.recovery_ms is not None)

    def summary(self) -> dict[str, Any]:
        values = self.recoveries_ms
        actives = sorted(k.active_ms for k in self.kills if k.active_ms is not None)
        resent = [k.resent_ok for k in self.kills]
        failed = [k.failed for k in self.kills]
        return {
            "kills": len(self.kills),
            "recovered": len(values),
            "recovery_median_ms": round(statistics.median(values), 1) if values else None,
            "recovery_p90_ms": round(percentile(values, 0.9), 1) if values else None,
            "recovery_max_ms": round(values[-1], 1) if values else None,
            "new_active_median_ms": round(statistics.median(actives), 1) if actives else None,
            "resent_ok_per_kill_median": statistics.median(resent) if resent else 0,
            "resent_ok_per_kill_max": max(resent, default=0),
            "failed_per_kill_median": statistics.median(failed) if failed else 0,
            "failed_per_kill_max": max(failed, default=0),
            "failed_requests": self.requests - self.succeeded,
            "replayed_median": statistics.median(self.replayed) if self.replayed else None,
            "replayed_max": max(self.replayed, default=None),
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data
