"""The health monitor's summaries: plain dicts, so the guide documents their keys from here.

:func:`check_health_summary_matches_monitor` builds a real summary with the monitor's own code
and fails generation when its keys differ from the ones documented below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from o_bus.handlers.health.aggregate import DEFAULT_FORGET_AFTER, HealthState
from o_bus.handlers.health.service import HEALTH_PREFIX, HEALTH_SUBJECT
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.store import layout

__all__ = [
    "ALL_AGENTS_FIELDS",
    "HEALTH_PREFIX",
    "HEALTH_SUBJECT",
    "LATENCY_FIELDS",
    "PROCESS_FIELDS",
    "SUMMARY_FIELDS",
    "check_health_summary_matches_monitor",
]

# key: (JSON type, meaning)
SUMMARY_FIELDS: Final[Mapping[str, tuple[str, str]]] = {
    "agent": ("string", "The agent's name."),
    "at": ("number", "Unix time (seconds) of the summary."),
    "registered": ("boolean", f"The agent is in the registry (KV `{layout.AGENTS_BUCKET}`)."),
    "definition": ("string or null", "Its agent definition, from the registry."),
    "up": (
        "boolean",
        "A process holding the agent's lease sent a heartbeat within the agent's "
        "`heartbeat_timeout`.",
    ),
    "lifecycle": (
        "string or null",
        "Lifecycle state reported by the active process (else by the last one that was active).",
    ),
    "status": (
        "string or null",
        "The supervisor's status: `running`, `failed` or `stopped`; null without a record.",
    ),
    "reason": ("string", "The supervisor's reason for that status; empty when none."),
    "restarts": ("integer or null", "Restarts counted by the supervisor."),
    "active_pid": ("integer or null", "Pid of the active process, while it is up."),
    "standby_pid": ("integer or null", "Pid of a standby process with a fresh heartbeat."),
    "code_version": ("string or null", "Version of the definition the active process runs."),
    "event_log_seq": ("integer or null", "Event-log sequence the active process reached."),
    "wal_backlog": ("integer or null", "WAL records waiting for the active process."),
    "heartbeat_age_s": ("number or null", "Seconds since the last heartbeat of any process."),
    "requests": ("integer", "Requests served by all its processes; never goes down."),
    "errors": ("integer", "Of those, requests answered with an error."),
    "counter_resets": ("integer", "Times a process's counters went down (counted afresh)."),
    "latency_ms": ("object", "Histogram of request latency (WAL acceptance to reply), below."),
    "processes": (
        "array",
        f"Processes heard from in the last {DEFAULT_FORGET_AFTER:g} s, newest first, below.",
    ),
}

LATENCY_FIELDS: Final[Mapping[str, tuple[str, str]]] = {
    "bounds": (
        "array of numbers",
        f"Upper bounds of the buckets in ms: {', '.join(f'{b:g}' for b in LATENCY_BUCKETS_MS)}.",
    ),
    "buckets": (
        "array of integers",
        "Requests per bucket (not cumulative): one per bound, then one above the last.",
    ),
    "sum": ("number", "Sum of all latencies, ms."),
    "count": ("integer", "Number of requests measured."),
}

PROCESS_FIELDS: Final[Mapping[str, tuple[str, str]]] = {
    "pid": ("integer", "Process id."),
    "holder": ("string", "Lease holder id: unique per process."),
    "role": ("string", "`active`, `standby` or `starting`."),
    "lifecycle": ("string", "Its lifecycle state."),
    "code_version": ("string", "Version of the definition it runs."),
    "definition": ("string", "The agent definition it runs."),
    "started_at": ("number", "Unix time it started."),
    "uptime_s": ("number", "Seconds since it started."),
    "seq": ("integer", "Event-log sequence it reached."),
    "wal_seq": ("integer", "WAL stream sequence it processed."),
    "wal_backlog": ("integer", "WAL records waiting for it."),
    "rss_bytes": ("integer", "Resident memory."),
    "heartbeat_age_s": ("number", "Seconds since its last heartbeat."),
    "fresh": ("boolean", "That heartbeat is within `heartbeat_timeout`."),
}

ALL_AGENTS_FIELDS: Final[Mapping[str, tuple[str, str]]] = {
    "at": ("number", "Unix time (seconds) of the answer."),
    "agents": ("object", "Each agent's summary, by agent name."),
    "malformed_heartbeats": ("integer", "Heartbeat messages the monitor could not use."),
}


def _example_heartbeat() -> Heartbeat:
    return Heartbeat(
        agent="a",
        definition="d",
        pid=1,
        holder="h",
        role="active",
        lifecycle="running",
        code_version="1.0.0",
        started_at=0.0,
        sent_at=0.0,
        seq=0,
        wal_seq=0,
        wal_backlog=0,
        rss_bytes=0,
        requests=0,
        errors=0,
        latency_sum_ms=0.0,
        latency_buckets=[0] * (len(LATENCY_BUCKETS_MS) + 1),
    )


def _same_keys(what: str, produced: Mapping[str, Any], documented: Mapping[str, Any]) -> None:
    if set(produced) != set(documented):
        raise RuntimeError(
            f"the health monitor's {what} has keys {sorted(produced)}, the guide documents "
            f"{sorted(documented)}: update o_bus/schemas/health.py"
        )


def check_health_summary_matches_monitor() -> None:
    """Fail loudly when the monitor's summaries have keys the guide does not document."""
    state = HealthState()
    state.observe(_example_heartbeat(), 0.0)
    everything: dict[str, Any] = state.summaries(0.0, 0.0)
    summary: dict[str, Any] = everything["agents"]["a"]
    _same_keys("answer on o.health", everything, ALL_AGENTS_FIELDS)
    _same_keys("summary", summary, SUMMARY_FIELDS)
    _same_keys("latency_ms", summary["latency_ms"], LATENCY_FIELDS)
    _same_keys("process summary", summary["processes"][0], PROCESS_FIELDS)
