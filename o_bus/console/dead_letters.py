"""Dead letters: every refused request with the reason, and re-driving one to its agent."""

from __future__ import annotations

from typing import Any

import nats.errors
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from o_bus.console.bus import bus_of
from o_bus.store import layout
from o_bus.store.subject_reader import read_messages
from o_bus.wire.headers import CE_TYPE, O_ERROR_CODE, O_ERROR_MESSAGE, O_REQUEST_ID, O_WAL_SEQ

__all__ = ["routes"]

SHOWN = 200
PREVIEW = 2000


async def list_dead_letters(request: Request) -> JSONResponse:
    """The latest dead letters (of one agent with ``?agent=``), newest first."""
    bus = bus_of(request)
    agent = request.query_params.get("agent") or None
    if agent is not None:
        layout.validate_agent_name(agent)
    try:
        info = await bus.js.stream_info(layout.DLQ_STREAM)
        first = max(0, info.state.last_seq - 20 * SHOWN)
    except nats.errors.Error:
        first = 0
    found = await read_messages(bus.js, layout.DLQ_STREAM, layout.dlq_wildcard(agent), first)
    letters: list[dict[str, Any]] = []
    for seq, subject, headers, body in reversed(found[-SHOWN:]):
        letters.append(
            {
                "seq": seq,
                "agent": subject.removeprefix(layout.DLQ_PREFIX).split(".", 1)[0],
                "request_id": headers.get(O_REQUEST_ID),
                "command": headers.get(CE_TYPE),
                "code": headers.get(O_ERROR_CODE),
                "reason": headers.get(O_ERROR_MESSAGE),
                "wal_seq": headers.get(O_WAL_SEQ),
                "body": body[:PREVIEW].decode(errors="replace"),
            }
        )
    return JSONResponse({"dead_letters": letters})


routes = [Route("/api/dead-letters", list_dead_letters)]
