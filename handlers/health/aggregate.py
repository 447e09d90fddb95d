"""What the monitor knows about each agent, built from heartbeats, supervision and the registry.

Pure logic: nothing here does I/O or reads a clock; callers pass ``now`` (monotonic seconds).

Counters in heartbeats belong to one process and start from zero when it starts, so the
per-agent totals are kept monotonic by adding, per process (its lease holder id, which is unique
per process), the difference from that process's previous heartbeat. A first heartbeat counts in
full; a counter that goes down means the process's metrics were reset and the new value counts
in full. Every role contributes: a standby serves nothing, so its counters stay zero until it
takes over, and a process that has just lost its lease keeps what it served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from o_bus.errors import ErrorCode, OBusError
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.store import layout
from o_bus.store.registry import AgentRecord
from o_bus.supervision.records import AgentSupervision, SupervisionPolicy

__all__ = [
    "BUCKET_COUNT",
    "DEFAULT_FORGET_AFTER",
    "AgentView",
    "Counters",
    "HealthState",
    "MalformedHeartbeat",
    "ProcessView",
    "parse_heartbeat",
]

BUCKET_COUNT = len(LATENCY_BUCKETS_MS) + 1  # the bounds, then +Inf
DEFAULT_FORGET_AFTER = 30.0  # seconds of silence after which a process leaves the views
MAX_PROCESSES_PER_AGENT = 64  # processes remembered per agent (their counter baselines)


class MalformedHeartbeat(OBusError):
    """A message on a heartbeat subject that is not a usable heartbeat."""

    code = ErrorCode.MALFORMED_REQUEST


def parse_heartbeat(subject: str, data: bytes) -> Heartbeat:
    """The heartbeat in ``data``, received on ``subject``; :class:`MalformedHeartbeat` if not."""
    if not subject.startswith(layout.HEARTBEAT_PREFIX):
        raise MalformedHeartbeat(f"not a heartbeat subject: {subject[:100]!r}")
    agent = subject[len(layout.HEARTBEAT_PREFIX) :]
    if not layout.AGENT_NAME.match(agent):
        raise MalformedHeartbeat(f"invalid agent name in subject {subject[:100]!r}")
    try:
        beat = Heartbeat.model_validate_json(data)
    except ValidationError as err:
        raise MalformedHeartbeat(
            f"invalid heartbeat ({err.error_count()} errors): {err.errors()[0]['msg']}"
        ) from None
    if beat.agent != agent:
        raise MalformedHeartbeat(f"heartbeat for {beat.agent[:100]!r} on {subject!r}")
    if len(beat.latency_buckets) != BUCKET_COUNT:
        raise MalformedHeartbeat(
            f"{len(beat.latency_buckets)} latency buckets, expected {BUCKET_COUNT}"
        )
    counts = (beat.requests, beat.errors, beat.rss_bytes, beat.seq, beat.wal_seq, beat.wal_backlog)
    if min(counts) < 0 or min(beat.latency_buckets) < 0:
        raise MalformedHeartbeat("negative counter in heartbeat")
    if not math.isfinite(beat.latency_sum_ms) or beat.latency_sum_ms < 0:
        raise MalformedHeartbeat("latency sum is not a finite non-negative number")
    if not (math.isfinite(beat.started_at) and math.isfinite(beat.sent_at)):
        raise MalformedHeartbeat("non-finite time in heartbeat")
    return beat


@dataclass
class Counters:
    """Monotonic request totals of one agent."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)

    def add(self, previous: Heartbeat | None, beat: Heartbeat) -> bool:
        """Add what ``beat`` counted since ``previous`` (same process); True on a reset."""
        reset = previous is None or (
            beat.requests < previous.requests
            or beat.errors < previous.errors
            or beat.latency_sum_ms < previous.latency_sum_ms
            or any(
                n < p for n, p in zip(beat.latency_buckets, previous.latency_buckets, strict=True)
            )
        )
        if reset or previous is None:
            self.requests += beat.requests
            self.errors += beat.errors
            self.latency_sum_ms += beat.latency_sum_ms
            for i, count in enumerate(beat.latency_buckets):
                self.buckets[i] += count
            return previous is not None
        self.requests += beat.requests - previous.requests
        self.errors += beat.errors - previous.errors
        self.latency_sum_ms += beat.latency_sum_ms - previous.latency_sum_ms
        for i, (count, before) in enumerate(
            zip(beat.latency_buckets, previous.latency_buckets, strict=True)
        ):
            self.buckets[i] += count - before
        return False

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass
class ProcessView:
    """The latest heartbeat of one process and when it arrived."""

    key: str
    last: Heartbeat
    seen_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.seen_at)

    def summary(self, now: float, stale_after: float) -> dict[str, Any]:
        beat = self.last
        age = self.age(now)
        return {
            "pid": beat.pid,
            "holder": beat.holder,
            "role": beat.role,
            "lifecycle": beat.lifecycle,
            "code_version": beat.code_version,
            "definition": beat.definition,
            "started_at": beat.started_at,
            "uptime_s": round(max(0.0, beat.sent_at - beat.started_at) + age, 3),
            "seq": beat.seq,
            "wal_seq": beat.wal_seq,
            "wal_backlog": beat.wal_backlog,
            "rss_bytes": beat.rss_bytes,
            "heartbeat_age_s": round(age, 3),
            "fresh": age <= stale_after,
        }


@dataclass
class AgentView:
    """Everything known about one agent."""

    name: str
    record: AgentRecord | None = None
    supervision: AgentSupervision | None = None
    processes: dict[str, ProcessView] = field(default_factory=dict)
    totals: Counters = field(default_factory=Counters)
    resets: int = 0
    last_active: str | None = None  # key of the process that last reported role "active"

    def stale_after(self, override: float | None) -> float:
        if override is not None:
            return override
        if self.record is not None:
            return self.record.supervision.heartbeat_timeout
        if self.supervision is not None:
            return self.supervision.policy.heartbeat_timeout
        return SupervisionPolicy().heartbeat_timeout

    def visible(self, now: float, forget_after: float) -> list[ProcessView]:
        """Processes heard from within ``forget_after``, newest first."""
        shown = [p for p in self.processes.values() if p.age(now) <= forget_after]
        return sorted(shown, key=lambda p: p.seen_at, reverse=True)

    def active(self, now: float, stale_after: float) -> ProcessView | None:
        """The freshest process that says it is active, if its heartbeat is fresh."""
        for process in sorted(self.processes.values(), key=lambda p: p.seen_at, reverse=True):
            if process.last.role == "active" and process.age(now) <= stale_after:
                return process
        return None

    def reported(self, now: float, stale_after: float) -> ProcessView | None:
        """The fresh active process, else the one that last reported being active."""
        found = self.active(now, stale_after)
        if found is None and self.last_active is not None:
            found = self.processes.get(self.last_active)
        return found

    def standby(self, now: float, stale_after: float) -> ProcessView | None:
        for process in sorted(self.processes.values(), key=lambda p: p.seen_at, reverse=True):
            if process.last.role == "standby" and process.age(now) <= stale_after:
                return process
        return None

    def last_seen(self) -> float | None:
        return max((p.seen_at for p in self.processes.values()), default=None)


class HealthState:
    """Every agent's view; fed by the service, read by the renderers."""

    def __init__(
        self,
        *,
        stale_after: float | None = None,
        forget_after: float = DEFAULT_FORGET_AFTER,
        max_processes: int = MAX_PROCESSES_PER_AGENT,
    ) -> None:
        self.stale_after_override = stale_after
        self.forget_after = forget_after
        self.max_processes = max_processes
        self.agents: dict[str, AgentView] = {}
        self.malformed = 0

    def _agent(self, name: str) -> AgentView:
        view = self.agents.get(name)
        if view is None:
            view = self.agents[name] = AgentView(name)
        return view

    # -- inputs ------------------------------------------------------------------------------

    def observe(self, beat: Heartbeat, now: float) -> None:
        """Take one (validated) heartbeat received at ``now``."""
        view = self._agent(beat.agent)
        key = beat.holder or f"pid:{beat.pid}"
        process = view.processes.get(key)
        if view.totals.add(process.last if process else None, beat):
            view.resets += 1
        if process is None:
            process = view.processes[key] = ProcessView(key, beat, now)
            if len(view.processes) > self.max_processes:
                oldest = min(view.processes.values(), key=lambda p: p.seen_at)
                del view.processes[oldest.key]
                if view.last_active == oldest.key:
                    view.last_active = None
        else:
            process.last, process.seen_at = beat, now
        if beat.role == "active":
            view.last_active = key

    def register(self, record: AgentRecord) -> None:
        self._agent(record.name).record = record

    def unregister(self, name: str) -> None:
        view = self.agents.get(name)
        if view is not None:
            view.record = None

    def supervise(self, name: str, supervision: AgentSupervision | None) -> None:
        """The supervisor's record of ``name`` (``None``: deleted)."""
        if supervision is None:
            view = self.agents.get(name)
            if view is not None:
                view.supervision = None
            return
        self._agent(name).supervision = supervision

    def prune(self, now: float) -> None:
        """Forget agents that are neither registered, supervised nor heard from lately."""
        for name in list(self.agents):
            view = self.agents[name]
            seen = view.last_seen()
            heard = seen is not None and now - seen <= self.forget_after
            if view.record is None and view.supervision is None and not heard:
                del self.agents[name]

    # -- outputs -----------------------------------------------------------------------------

    def stale_after(self, view: AgentView) -> float:
        return view.stale_after(self.stale_after_override)

    def summary(self, name: str, now: float, wall_time: float) -> dict[str, Any]:
        """The JSON-ready summary of one agent (published on ``o.health.<agent>``)."""
        view = self.agents[name]
        stale_after = self.stale_after(view)
        active = view.active(now, stale_after)
        reported = view.reported(now, stale_after)
        standby = view.standby(now, stale_after)
        seen = view.last_seen()
        supervision = view.supervision
        totals = view.totals
        return {
            "agent": name,
            "at": wall_time,
            "registered": view.record is not None,
            "definition": view.record.definition if view.record else None,
            "up": active is not None,
            "lifecycle": reported.last.lifecycle if reported else None,
            "status": supervision.status if supervision else None,
            "reason": supervision.reason if supervision else "",
            "restarts": supervision.restarts if supervision else None,
            "active_pid": active.last.pid if active else None,
            "standby_pid": standby.last.pid if standby else None,
            "code_version": reported.last.code_version if reported else None,
            "event_log_seq": reported.last.seq if reported else None,
            "wal_backlog": reported.last.wal_backlog if reported else None,
            "heartbeat_age_s": None if seen is None else round(max(0.0, now - seen), 3),
            "requests": totals.requests,
            "errors": totals.errors,
            "counter_resets": view.resets,
            "latency_ms": {
                "bounds": list(LATENCY_BUCKETS_MS),
                "buckets": list(totals.buckets),
                "sum": round(totals.latency_sum_ms, 3),
                "count": totals.count,
            },
            "processes": [
                p.summary(now, stale_after) for p in view.visible(now, self.forget_after)
            ],
        }

    def summaries(self, now: float, wall_time: float) -> dict[str, Any]:
        """Every agent, as answered on ``o.health`` and ``GET /health``."""
        return {
            "at": wall_time,
            "agents": {name: self.summary(name, now, wall_time) for name in sorted(self.agents)},
            "malformed_heartbeats": self.malformed,
        }
