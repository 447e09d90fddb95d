"""Every agent process seen on ``o.hb.<agent>``: its role, lifecycle, RSS and CPU."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from o_bus.runtime.heartbeat import Heartbeat
from o_bus.store import layout
from o_bus_bench.stack import AGENT
from o_bus_bench.stats import cpu_ticks

__all__ = ["HeartbeatWatch", "SeenProcess"]


@dataclass(slots=True)
class SeenProcess:
    pid: int
    role: str
    lifecycle: str
    last_beat: float  # monotonic
    active_since: float | None = None  # monotonic time of its first "active" heartbeat
    max_rss: int = 0
    roles: set[str] = field(default_factory=set)
    cpu_first: int | None = None  # CPU ticks when first read while counting
    cpu_last: int | None = None
    cpu_read_at: float = 0.0


class HeartbeatWatch:
    """Every agent process seen on ``o.hb.<agent>``: role, lifecycle, RSS."""

    def __init__(self, agent: str = AGENT) -> None:
        self.agent = agent
        self.processes: dict[int, SeenProcess] = {}
        self.counting_cpu = False  # read each process's CPU ticks (at most 4 times a second)

    async def start(self, nc: Client) -> None:
        await nc.subscribe(layout.heartbeat_subject(self.agent), cb=self._on_beat)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        now = time.monotonic()
        seen = self.processes.get(beat.pid)
        if seen is None:
            seen = self.processes[beat.pid] = SeenProcess(beat.pid, beat.role, beat.lifecycle, now)
        seen.role, seen.lifecycle, seen.last_beat = beat.role, beat.lifecycle, now
        seen.max_rss = max(seen.max_rss, beat.rss_bytes)
        seen.roles.add(beat.role)
        if beat.role == "active" and seen.active_since is None:
            seen.active_since = now
        if self.counting_cpu and now - seen.cpu_read_at > 0.25:
            seen.cpu_read_at = now
            seen.cpu_last = cpu_ticks(beat.pid)
            if seen.cpu_first is None:
                seen.cpu_first = seen.cpu_last

    def cpu_percent(self, seconds: float) -> float:
        """CPU of every agent process while counting, in % of one core (a process that died
        loses at most its last quarter second)."""
        ticks = sum(
            p.cpu_last - p.cpu_first
            for p in self.processes.values()
            if p.cpu_first is not None and p.cpu_last is not None
        )
        return round(100.0 * ticks / os.sysconf("SC_CLK_TCK") / seconds, 1) if seconds else 0.0

    def live(self, within: float = 0.5) -> list[SeenProcess]:
        limit = time.monotonic() - within
        return [p for p in self.processes.values() if p.last_beat >= limit]

    def active(self) -> SeenProcess | None:
        found = [p for p in self.live() if p.role == "active" and p.lifecycle == "running"]
        return max(found, key=lambda p: p.active_since or 0.0) if found else None

    def describe(self) -> str:
        live = self.live()
        return ", ".join(f"{p.pid} {p.role}/{p.lifecycle}" for p in live) or "no process"

    def ready(self, standby: bool) -> bool:
        """An active process serves, and (with ``standby``) a standby follows the log."""
        if self.active() is None:
            return False
        return not standby or any(
            p.role == "standby" and p.lifecycle == "standby" for p in self.live()
        )

    def rss_mb(self) -> dict[str, float]:
        """Per role (active, standby): the largest heartbeat RSS of any process in it, in MB."""
        rss: dict[str, float] = {}
        for process in self.processes.values():
            for role in process.roles & {"active", "standby"}:
                rss[role] = max(rss.get(role, 0.0), round(process.max_rss / 2**20, 1))
        return rss
