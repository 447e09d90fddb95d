"""The monitor's view as Prometheus metric families (names ``o_bus_*``, label ``agent``)."""

from __future__ import annotations

from o_bus.agent.lifecycle import LifecycleState
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS

from .aggregate import HealthState
from .prometheus import Family

__all__ = ["families", "lifecycle_states"]

SUPERVISION_STATUSES = ("running", "failed", "stopped")


def lifecycle_states(current: str | None) -> list[tuple[str, bool]]:
    """Every lifecycle state and whether it is ``current``; an unknown current one is added."""
    known = [state.value for state in LifecycleState]
    states = [(state, state == current) for state in known]
    if current is not None and current not in known:
        states.append((current, True))
    return states


def families(state: HealthState, now: float) -> list[Family]:
    up = Family("o_bus_agent_up", "gauge", "1 if the agent's active process heartbeat is fresh")
    standby_up = Family(
        "o_bus_standby_up", "gauge", "1 if the agent has a standby process with a fresh heartbeat"
    )
    requests = Family(
        "o_bus_requests_total", "counter", "Requests processed by the agent, all its processes"
    )
    errors = Family(
        "o_bus_request_errors_total", "counter", "Requests of the agent that ended in an error"
    )
    latency = Family(
        "o_bus_request_latency_ms",
        "histogram",
        "Request latency from WAL acceptance to reply, in milliseconds",
    )
    resets = Family(
        "o_bus_counter_resets_total",
        "counter",
        "Times a process's counters went back (its metrics restarted from zero)",
    )
    restarts = Family(
        "o_bus_restarts_total", "counter", "Restarts of the agent counted by the supervisor"
    )
    status = Family(
        "o_bus_supervisor_status", "gauge", "The supervisor's status of the agent (1 = current)"
    )
    lifecycle = Family(
        "o_bus_lifecycle_state",
        "gauge",
        "Lifecycle state reported by the agent's active process (1 = current)",
    )
    backlog = Family("o_bus_wal_backlog", "gauge", "WAL records waiting for the agent")
    seq = Family("o_bus_event_log_seq", "gauge", "Event-log sequence the agent has reached")
    rss = Family(
        "o_bus_process_rss_bytes", "gauge", "Resident memory of each live agent process, bytes"
    )
    age = Family(
        "o_bus_heartbeat_age_seconds",
        "gauge",
        "Seconds since the last heartbeat from any process of the agent",
    )
    malformed = Family(
        "o_bus_health_malformed_heartbeats_total",
        "counter",
        "Messages on heartbeat subjects that the monitor ignored",
    )

    for name in sorted(state.agents):
        view = state.agents[name]
        agent = {"agent": name}
        stale_after = state.stale_after(view)
        up.add(1 if view.active(now, stale_after) else 0, agent)
        standby_up.add(1 if view.standby(now, stale_after) else 0, agent)
        totals = view.totals
        requests.add(totals.requests, agent)
        errors.add(totals.errors, agent)
        latency.add_histogram(agent, LATENCY_BUCKETS_MS, totals.buckets, totals.latency_sum_ms)
        resets.add(view.resets, agent)
        if view.supervision is not None:
            restarts.add(view.supervision.restarts, agent)
            for value in SUPERVISION_STATUSES:
                current = 1 if view.supervision.status == value else 0
                status.add(current, {"agent": name, "status": value})
        reported = view.reported(now, stale_after)
        if reported is not None:
            for value, current in lifecycle_states(reported.last.lifecycle):
                lifecycle.add(1 if current else 0, {"agent": name, "state": value})
            backlog.add(reported.last.wal_backlog, agent)
            seq.add(reported.last.seq, agent)
        for process in view.visible(now, state.forget_after):
            if process.age(now) <= stale_after:
                labels = {"agent": name, "role": process.last.role, "pid": str(process.last.pid)}
                rss.add(process.last.rss_bytes, labels)
        seen = view.last_seen()
        if seen is not None:
            age.add(round(max(0.0, now - seen), 3), agent)
    malformed.add(state.malformed)
    return [
        up,
        standby_up,
        requests,
        errors,
        latency,
        resets,
        restarts,
        status,
        lifecycle,
        backlog,
        seq,
        rss,
        age,
        malformed,
    ]
