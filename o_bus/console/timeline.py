"""An agent's timeline: its events with request id, type, code version and trace id, a live
stream of new ones (server-sent events) read with the event log's own replay, and the
outcomes of the requests that produced no event (rejected with the reason, or no-op)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from o_bus.console.bus import bus_of
from o_bus.console.sse import event_stream, sse_response
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.registry import Registry
from o_bus.store.subject_reader import read_subject
from o_bus.wire.headers import CE_REQUESTID, CE_WALSEQ, O_ERROR_CODE, O_ERROR_MESSAGE, O_OUTCOME

__all__ = ["event_json", "routes", "trace_id"]

MAX_EVENTS = 500
BATCH = 200  # events waiting together go out as one frame (a list)


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (version-traceid-parentid-flags), if well formed."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    return parts[1]


def event_json(event: StoredEvent) -> dict[str, Any]:
    try:
        data: Any = from_json(event.data) if event.data else None
    except ValueError:
        data = event.data.decode(errors="replace")
    return {
        "seq": event.seq,
        "stream_seq": event.stream_seq,
        "time": event.time,
        "type": event.type,
        "version": event.version,
        "request_id": event.request_id,
        "wal_seq": event.wal_seq,
        "code_version": event.code_version,
        "trace_id": trace_id(event.traceparent),
        "data": data,
    }


def _limit(request: Request) -> int:
    try:
        return max(1, min(MAX_EVENTS, int(request.query_params.get("limit", "100"))))
    except ValueError:
        return 100


async def list_events(request: Request) -> JSONResponse:
    """The latest ``limit`` events (oldest first)."""
    bus = bus_of(request)
    agent = request.path_params["agent"]
    await Registry(bus.js).get(agent)
    log = JetStreamEventLog(bus.nc, bus.js, agent)
    end = await log.last_position()
    found: list[dict[str, Any]] = []
    limit = _limit(request)

    def take(event: StoredEvent) -> None:
        found.append(event_json(event))
        del found[:-limit]

    # The log also holds outcome and fence records: read a little more than asked for.
    await log.replay(take, after_stream_seq=max(0, end.stream_seq - 2 * limit))
    return JSONResponse({"agent": agent, "last_seq": end.seq, "events": found})


async def list_outcomes(request: Request) -> JSONResponse:
    """The latest requests that produced no event: rejected (with the reason) or no-op."""
    bus = bus_of(request)
    agent = request.path_params["agent"]
    await Registry(bus.js).get(agent)
    end = await JetStreamEventLog(bus.nc, bus.js, agent).last_position()
    limit = _limit(request)
    found = await read_subject(
        bus.js,
        layout.events_stream(agent),
        layout.outcome_subject(agent),
        max(0, end.guard_seq - 20 * limit),
    )
    outcomes = [
        {
            "stream_seq": seq,
            "request_id": headers.get(CE_REQUESTID),
            "wal_seq": int(headers.get(CE_WALSEQ, "0")),
            "outcome": headers.get(O_OUTCOME),
            "code": headers.get(O_ERROR_CODE),
            "reason": headers.get(O_ERROR_MESSAGE),
        }
        for seq, headers, _ in found[-limit:]
    ]
    return JSONResponse({"agent": agent, "outcomes": outcomes})


async def _follow(log: JetStreamEventLog, after: int) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=10_000)

    def push(event: StoredEvent) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a page too slow to read loses events
            queue.put_nowait(("events", event_json(event)))

    task = asyncio.create_task(log.replay(push, after_stream_seq=after, follow=True))
    try:
        async for frame in event_stream(queue, batch=BATCH):
            yield frame
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def follow_events(request: Request) -> StreamingResponse:
    """New events after stream sequence ``after`` (default: from now on), as they come."""
    bus = bus_of(request)
    agent = request.path_params["agent"]
    await Registry(bus.js).get(agent)
    log = JetStreamEventLog(bus.nc, bus.js, agent)
    after_text = request.query_params.get("after")
    after = int(after_text) if after_text and after_text.isdigit() else None
    if after is None:
        after = (await log.last_position()).stream_seq
    return sse_response(_follow(log, after))


routes = [
    Route("/api/agents/{agent}/events", list_events),
    Route("/api/agents/{agent}/events/stream", follow_events),
    Route("/api/agents/{agent}/outcomes", list_outcomes),
]
