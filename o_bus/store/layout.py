"""Names of every stream, subject and bucket O uses: the documented wire layout.

Clients in other languages rely on these names (see README, "Wire contract").
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = [
    "AGENTS_BUCKET",
    "CODE_BUCKET",
    "CODE_VERSIONS_BUCKET",
    "CONFIG_BUCKET",
    "DIFF_STREAM",
    "DLQ_STREAM",
    "EVAL_CACHE_BUCKET",
    "EVENTS_STREAM_PREFIX",
    "EVOLUTION_BUCKET",
    "FEEDBACK_STREAM",
    "LEASES_BUCKET",
    "PLACEMENT_BUCKET",
    "REGRESSION_STREAM",
    "ROUTES_BUCKET",
    "SNAPSHOTS_BUCKET",
    "SUPERVISOR_BUCKET",
    "SYSTEM_STREAM",
    "TOOL_KV_BUCKET",
    "WAL_STREAM",
    "candidate_subject",
    "control_subject",
    "diff_subject",
    "dlq_subject",
    "dlq_wildcard",
    "event_subject",
    "events_stream",
    "evolution_event_subject",
    "feedback_record_subject",
    "feedback_subject",
    "fence_subject",
    "heartbeat_subject",
    "lifecycle_subject",
    "operator_event_subject",
    "outcome_subject",
    "query_subject",
    "regression_subject",
    "request_subject",
    "route_event_subject",
    "route_refused_subject",
    "system_event_subject",
    "trigger_event_subject",
    "validate_agent_name",
    "version_token",
    "wal_subject",
]

REQUEST_PREFIX: Final = "o.req."
REQUEST_WILDCARD: Final = "o.req.*"

WAL_STREAM: Final = "O_WAL"
WAL_PREFIX: Final = "o.wal."
EVENTS_STREAM_PREFIX: Final = "O_EVT_"  # one stream per agent: O_EVT_<agent>
EVENT_PREFIX: Final = "o.evt."
FENCE_PREFIX: Final = "o.fence."  # takeover markers; same stream, never read as events
OUTCOME_PREFIX: Final = "o.outcome."  # requests that produced no event: rejected or no-op
SYSTEM_STREAM: Final = "O_SYSTEM"
LIFECYCLE_PREFIX: Final = "o.sys.lifecycle."
DLQ_STREAM: Final = "O_DLQ"
DLQ_PREFIX: Final = "o.dlq."

CONTROL_PREFIX: Final = "o.ctl."
QUERY_PREFIX: Final = "o.qry."  # read-only queries: core-NATS request/reply, not stored

SNAPSHOTS_BUCKET: Final = "o_snapshots"
AGENTS_BUCKET: Final = "o_agents"
CONFIG_BUCKET: Final = "o_config"
LEASES_BUCKET: Final = "o_leases"
SUPERVISOR_BUCKET: Final = "o_supervisor"
PLACEMENT_BUCKET: Final = "o_placement"  # agent -> the host whose supervisor runs it
TOOL_KV_BUCKET: Final = "o_tool_kv"  # what agents store through the built-in kv tool
CODE_BUCKET: Final = "o_code"  # object store: code versions by sha256
CODE_VERSIONS_BUCKET: Final = "o_code_versions"  # KV: <agent>.<sha256 hex> -> CodeVersion
HEARTBEAT_PREFIX: Final = "o.hb."
PROGRESS_PREFIX: Final = "o.progress."  # the WAL sequence an agent has processed
SYSTEM_EVENT_PREFIX: Final = "o.sys.agent."
ROUTE_EVENT_PREFIX: Final = "o.sys.route."
ROUTE_REFUSED_PREFIX: Final = "o.sys.route_refused."
EVOLUTION_EVENT_PREFIX: Final = "o.sys.evolution."
ROUTES_BUCKET: Final = "o_routes"
EVOLUTION_BUCKET: Final = "o_evolution"
EVAL_CACHE_BUCKET: Final = "o_evalcache"  # KV: search evaluations by (candidate, request)
DIFF_STREAM: Final = "O_DIFF"
HEALTH_SUBJECT: Final = "o.health"  # request/reply: every agent's health summary
HEALTH_PREFIX: Final = "o.health."  # published: one agent's health summary
SYSTEM_WILDCARD: Final = "o.sys.>"  # every subject of the system stream
SERVICE_PREFIX: Final = "o.svc."  # core-NATS requests to the bus services themselves
SUPERVISOR_RESET_SUBJECT: Final = "o.svc.supervisor.reset"
SUPERVISOR_RESTART_SUBJECT: Final = "o.svc.supervisor.restart"
OPERATOR_EVENT_PREFIX: Final = "o.sys.operator."  # who did what to an agent, and why
DIFF_PREFIX: Final = "o.diff."
CANDIDATE_PREFIX: Final = "o.cand."
FEEDBACK_PREFIX: Final = "o.feedback."  # core-NATS request/reply: feedback in, verdict back
FEEDBACK_WILDCARD: Final = "o.feedback.*"
FEEDBACK_STREAM: Final = "O_FEEDBACK"  # accepted feedback, kept without age limit
FEEDBACK_RECORD_PREFIX: Final = "o.fbrec."
REGRESSION_STREAM: Final = "O_REGRESSION"  # requests every later candidate must pass
REGRESSION_PREFIX: Final = "o.regress."
TRIGGER_EVENT_PREFIX: Final = "o.sys.trigger."

AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def validate_agent_name(name: str) -> str:
    """Return ``name`` if it is a valid agent name (one NATS subject token), else raise."""
    if not AGENT_NAME.match(name):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"invalid agent name {name!r}: use 1-64 of A-Z a-z 0-9 _ -, starting alphanumeric",
        )
    return name


def request_subject(agent: str) -> str:
    return REQUEST_PREFIX + agent


def wal_subject(agent: str) -> str:
    return WAL_PREFIX + agent


def event_subject(agent: str) -> str:
    return EVENT_PREFIX + agent


def fence_subject(agent: str) -> str:
    return FENCE_PREFIX + agent


def outcome_subject(agent: str) -> str:
    return OUTCOME_PREFIX + agent


def events_stream(agent: str) -> str:
    """The agent's own stream: its events, outcomes and fences."""
    return EVENTS_STREAM_PREFIX + agent


def heartbeat_subject(agent: str) -> str:
    """Core-NATS subject of an agent process's heartbeats (not persisted)."""
    return HEARTBEAT_PREFIX + agent


def progress_subject(agent: str) -> str:
    """Core-NATS subject on which an agent's active process says how far it has processed
    the WAL, as soon as that moves (not persisted)."""
    return PROGRESS_PREFIX + agent


def agent_log_wildcard(agent: str) -> str:
    """Every subject of an agent's event stream: events, outcomes and fences."""
    return f"o.*.{agent}"


def system_records_wildcard(agent: str) -> str:
    """Every system record (lifecycle, supervision) about one agent."""
    return f"o.sys.*.{agent}"


def health_subject(agent: str) -> str:
    """Core-NATS subject of one agent's health summary, published by the health monitor."""
    return HEALTH_PREFIX + agent


def service_status_subject(service: str) -> str:
    """Core-NATS subject a running bus service (splitter, supervisor...) answers when ready."""
    return f"{SERVICE_PREFIX}{service}.status"


def system_event_subject(agent: str) -> str:
    """Persisted supervision events of an agent: start, crash, restart, takeover, escalation."""
    return SYSTEM_EVENT_PREFIX + agent


def lifecycle_subject(agent: str) -> str:
    return LIFECYCLE_PREFIX + agent


def control_subject(agent: str, operation: str) -> str:
    """Core-NATS subject of an agent's control operation (dup, snapshot, status)."""
    return f"{CONTROL_PREFIX}{agent}.{operation}"


def query_subject(agent: str) -> str:
    """Core-NATS subject on which the agent's active process answers queries."""
    return QUERY_PREFIX + agent


def dlq_subject(agent: str | None, request_id: str | None) -> str:
    """Dead-letter subject: one per (agent, request id), so a rejection can be looked up."""
    digest = hashlib.sha256((request_id or "").encode()).hexdigest()[:24]
    return f"{DLQ_PREFIX}{agent if agent else '_unrouted'}.{digest}"


def dlq_wildcard(agent: str | None = None) -> str:
    """Every dead letter of one agent (or of all, with None)."""
    return f"{DLQ_PREFIX}{agent}.*" if agent else DLQ_PREFIX + ">"


def operator_event_subject(agent: str) -> str:
    """Persisted operator actions on an agent (reset, restart, abort, re-drive): who and why."""
    return OPERATOR_EVENT_PREFIX + agent


def route_event_subject(agent: str) -> str:
    """Persisted record of every change to an agent's routes: who, why, before and after."""
    return ROUTE_EVENT_PREFIX + agent


def route_refused_subject(agent: str) -> str:
    """Persisted record of a route an agent process refused to follow, with the reason."""
    return ROUTE_REFUSED_PREFIX + agent


def evolution_event_subject(agent: str) -> str:
    """Persisted decisions of the evolution arbiter for an agent, each with its reason."""
    return EVOLUTION_EVENT_PREFIX + agent


def diff_subject(agent: str) -> str:
    """Comparison stream: requests where a candidate's output differed from live's."""
    return DIFF_PREFIX + agent


def candidate_subject(agent: str, version: str, operation: str) -> str:
    """Core-NATS subjects of a candidate process of ``agent`` running code ``version``
    (a ``sha256:<hex>`` digest): ``decide`` (canary requests) and ``stats`` (its metrics)."""
    return f"{CANDIDATE_PREFIX}{agent}.{version_token(version)}.{operation}"


def version_token(version: str) -> str:
    """A code version's short form, usable as one subject token: 16 hex digits."""
    return version.removeprefix("sha256:")[:16]


def feedback_subject(agent: str) -> str:
    """Where clients send feedback on one of ``agent``'s requests (request/reply)."""
    return FEEDBACK_PREFIX + agent


def feedback_record_subject(agent: str) -> str:
    """Accepted feedback of ``agent``, in the ``O_FEEDBACK`` stream."""
    return FEEDBACK_RECORD_PREFIX + agent


def regression_subject(agent: str) -> str:
    """``agent``'s regression set (red findings, negatively rated requests), ``O_REGRESSION``."""
    return REGRESSION_PREFIX + agent


def trigger_event_subject(agent: str) -> str:
    """Self-trigger records of ``agent``: firings with their reason, pauses, searches."""
    return TRIGGER_EVENT_PREFIX + agent
