"""What an operator may do to a running platform, for the CLI and the web console alike.

Reset or restart an agent, abort or roll back an evolution, re-drive a dead letter. Each action
is recorded on ``o.sys.operator.<agent>`` (stream O_SYSTEM) with who did it and why, so it
shows in `o-bus history --system` beside the supervisor's own events.
"""

from __future__ import annotations

import contextlib
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json

from o_bus.errors import (
    AgentUnavailableError,
    DeadLetterNotFoundError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
)
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.routes import Route, RouteStore
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.wire.headers import (
    NATS_PREFIX,
    O_ERROR_CODE,
    O_ERROR_MESSAGE,
    O_ORIGINAL_SIZE,
    O_REQUEST_ID,
    O_WAL_SEQ,
)

__all__ = [
    "OperatorAction",
    "abort_evolution",
    "pause_agent",
    "record_action",
    "redrive_dead_letter",
    "reset_agent",
    "restart_agent",
    "resume_agent",
    "roll_back",
]

# Headers the dead-letter stream added to the refused request: not sent again.
_DEAD_LETTER_ONLY = (O_ERROR_CODE, O_ERROR_MESSAGE, O_ORIGINAL_SIZE, O_REQUEST_ID, O_WAL_SEQ)


class OperatorAction(BaseModel):
    """One operator action, as recorded."""

    model_config = ConfigDict(frozen=True)
    agent: str
    type: str
    by: str
    reason: str = ""
    at: str
    details: dict[str, Any] = {}


async def record_action(
    js: JetStreamContext,
    agent: str,
    action: str,
    by: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> OperatorAction:
    """Append the record of an action to the system stream."""
    record = OperatorAction(
        agent=agent, type=action, by=by, reason=reason, at=utc_now(), details=details or {}
    )
    await js.publish(layout.operator_event_subject(agent), record.model_dump_json().encode())
    return record


async def _ask_supervisor(nc: Client, subject: str, agent: str) -> dict[str, Any]:
    try:
        msg = await nc.request(subject, agent.encode(), timeout=5)
    except nats.errors.Error as err:
        raise AgentUnavailableError("no supervisor answered: is `o-bus up` running?") from err
    reply: dict[str, Any] = from_json(msg.data)
    return reply


async def reset_agent(
    nc: Client, js: JetStreamContext, agent: str, by: str, reason: str = ""
) -> dict[str, Any]:
    """Ask the supervisor to start again an agent it gave up on (after the cause is fixed)."""
    reply = await _ask_supervisor(nc, layout.SUPERVISOR_RESET_SUBJECT, agent)
    if reply.get("ok"):
        await record_action(js, agent, "reset", by, reason)
    return reply


async def restart_agent(
    nc: Client, js: JetStreamContext, agent: str, by: str, reason: str = ""
) -> dict[str, Any]:
    """Ask the supervisor to stop the agent's processes; it starts them again as after any
    exit (a warm standby takes over first, if the agent has one)."""
    reply = await _ask_supervisor(nc, layout.SUPERVISOR_RESTART_SUBJECT, agent)
    if reply.get("ok"):
        await record_action(js, agent, "restart", by, reason, {"pids": reply.get("pids", [])})
    return reply


async def _ask_agent(nc: Client, agent: str, operation: str, reason: str) -> dict[str, Any]:
    layout.validate_agent_name(agent)
    try:
        msg = await nc.request(
            layout.control_subject(agent, operation), reason.encode(), timeout=10
        )
    except nats.errors.Error as err:
        raise AgentUnavailableError(f"no process of {agent!r} answered") from err
    status: dict[str, Any] = from_json(msg.data)
    return status


async def pause_agent(
    nc: Client, js: JetStreamContext, agent: str, by: str, reason: str = ""
) -> dict[str, Any]:
    """Stop the agent deciding requests; they wait in the WAL (accepted, not lost) until
    :func:`resume_agent`, or until its process restarts."""
    status = await _ask_agent(nc, agent, "pause", f"{by}: {reason or 'no reason given'}")
    await record_action(js, agent, "pause", by, reason)
    return {"ok": True, "agent": agent, "lifecycle": status.get("lifecycle")}


async def resume_agent(
    nc: Client, js: JetStreamContext, agent: str, by: str, reason: str = ""
) -> dict[str, Any]:
    """Let a paused agent decide the requests that waited, in order, and the new ones."""
    status = await _ask_agent(nc, agent, "resume", f"{by}: {reason or 'no reason given'}")
    await record_action(js, agent, "resume", by, reason)
    return {"ok": True, "agent": agent, "lifecycle": status.get("lifecycle")}


async def abort_evolution(
    js: JetStreamContext, agent: str, by: str, reason: str = ""
) -> dict[str, Any]:
    """Ask the arbiter to stop the agent's running evolution (it restores the routes)."""
    store = EvolutionStore(js)
    evolution, revision = await store.get(agent)
    if not evolution.active:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"the evolution of {agent!r} is already {evolution.status}",
        )
    why = f"{by}: {reason or 'no reason given'}"
    await store.save(evolution.model_copy(update={"abort_requested": why}), revision)
    await record_action(js, agent, "abort_evolution", by, reason, {"version": evolution.version})
    return {"agent": agent, "abort_requested": why}


async def roll_back(js: JetStreamContext, agent: str, by: str, reason: str = "") -> dict[str, Any]:
    """One step back: abort a running evolution, else serve the previous live code again."""
    evolution = None
    with contextlib.suppress(NotFoundError):
        evolution, _ = await EvolutionStore(js).get(agent)
    if evolution is not None and evolution.active:
        return await abort_evolution(js, agent, by, reason)
    routes = RouteStore(js)
    route, _ = await routes.get(agent)
    if route.previous_live == route.live:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"{agent!r} has no earlier live code to roll back to"
        )

    def back(current: Route) -> Route:
        return current.model_copy(
            update={"live": current.previous_live, "previous_live": current.live}
        )

    after = await routes.update(agent, back, by=by, reason=reason or "roll back")
    await record_action(js, agent, "roll_back", by, reason, {"from": route.live, "to": after.live})
    return {"agent": agent, "live": after.live, "previous_live": after.previous_live}


async def redrive_dead_letter(
    nc: Client, js: JetStreamContext, stream_seq: int, by: str, reason: str = ""
) -> dict[str, Any]:
    """Send a dead letter's request again to its agent, with its own headers (same request
    id: the bus answers a request it already decided with the recorded reply)."""
    try:
        msg = await js.get_msg(layout.DLQ_STREAM, seq=stream_seq, direct=True)
    except nats.errors.Error as err:
        raise DeadLetterNotFoundError(f"no dead letter at sequence {stream_seq}") from err
    agent = (msg.subject or "").removeprefix(layout.DLQ_PREFIX).split(".", 1)[0]
    if not layout.AGENT_NAME.match(agent):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, "this dead letter names no agent to send it to"
        )
    kept = msg.headers or {}
    if kept.get(O_ORIGINAL_SIZE, "").isdigit() and int(kept[O_ORIGINAL_SIZE]) > len(
        msg.data or b""
    ):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"dead letter {stream_seq} kept only part of its body ({kept[O_ORIGINAL_SIZE]} "
            "bytes were sent): it cannot be sent again",
        )
    headers = {
        k: v
        for k, v in kept.items()
        if not k.startswith(NATS_PREFIX) and k not in _DEAD_LETTER_ONLY
    }
    try:
        reply = await nc.request(
            layout.request_subject(agent), msg.data or b"", timeout=5, headers=headers
        )
        answer: Any = from_json(reply.data) if reply.data else None
    except nats.errors.Error as err:
        raise AgentUnavailableError(f"{agent!r} did not answer the re-driven request") from err
    except ValueError:
        answer = None
    await record_action(js, agent, "redrive", by, reason, {"dead_letter": stream_seq})
    return {"agent": agent, "dead_letter": stream_seq, "reply": answer}
