"""Requests to agents over one NATS connection: commands (``send``) and queries (``query``).

The low-level calls that runtime code (tool runners, the memory search tool) and the
:class:`o_bus.Client` share. Any NATS client in any language can do the same: see README,
"Wire contract".
"""

from __future__ import annotations

import uuid
from typing import Any

import nats.errors
from nats.aio.client import Client

from o_bus.errors import AgentUnavailableError, RequestTimeoutError
from o_bus.store import layout
from o_bus.wire.attributes import MAX_SOURCE_LENGTH, check_text
from o_bus.wire.cloudevents import MAX_ID_LENGTH, SPECVERSION
from o_bus.wire.codec import Encoding, decode, encode
from o_bus.wire.headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_TRACEPARENT,
    CE_TRACESTATE,
    CE_TYPE,
    CONTENT_TYPE,
)

__all__ = ["query", "request_headers", "send"]


def request_headers(
    command: str, request_id: str, encoding: Encoding, source: str
) -> dict[str, str]:
    return {
        CE_ID: request_id,
        CE_TYPE: command,
        CE_SOURCE: source,
        CE_SPECVERSION: SPECVERSION,
        CONTENT_TYPE: encoding.value,
    }


async def send(
    nc: Client,
    agent: str,
    command: str,
    data: Any = None,
    *,
    request_id: str | None = None,
    encoding: Encoding = Encoding.JSON,
    timeout: float = 5.0,
    source: str = "o-bus/client",
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> dict[str, Any]:
    """Send one command and return the decoded reply (``ok`` true or false).

    Raises :class:`RequestTimeoutError` when no reply came within ``timeout``. An id or
    source with surrounding whitespace or a control character raises ``InvalidRequestError``
    before anything is sent: NATS clients trim header values, so it would otherwise reach the
    bus as another id. ``traceparent`` (and ``tracestate``): the W3C trace context the request
    continues."""
    request_id = request_id or uuid.uuid4().hex
    check_text("id", request_id, MAX_ID_LENGTH)
    check_text("source", source, MAX_SOURCE_LENGTH)
    body = encode({} if data is None else data, encoding)
    headers = request_headers(command, request_id, encoding, source)
    if traceparent:
        headers[CE_TRACEPARENT] = traceparent
        if tracestate:
            headers[CE_TRACESTATE] = tracestate
    try:
        msg = await nc.request(
            layout.request_subject(agent), body, timeout=timeout, headers=headers
        )
    except nats.errors.NoRespondersError as err:
        raise AgentUnavailableError("no splitter is running: is `o-bus up` running?") from err
    except nats.errors.TimeoutError as err:
        raise RequestTimeoutError(
            f"no reply from {agent!r} within {timeout}s; the request (id {request_id}) may still "
            "be processed: re-send it with the same --id to get its outcome",
            request_id=request_id,
        ) from err
    reply = decode(msg.data, Encoding.MSGPACK if encoding is Encoding.MSGPACK else Encoding.JSON)
    if not isinstance(reply, dict):
        raise AgentUnavailableError(f"unexpected reply: {reply!r}")
    return reply


async def query(
    nc: Client,
    agent: str,
    name: str,
    params: dict[str, Any] | None = None,
    *,
    min_seq: int = 0,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Ask agent ``agent`` the read-only query ``name`` (on ``o.qry.<agent>``, not through the
    WAL) and return the decoded reply (``ok`` true or false). With ``min_seq``, the agent
    answers once it has applied that sequence (for example the ``seq`` of a command's reply)."""
    body = {"query": name, "params": params or {}, "min_seq": min_seq, "timeout": timeout}
    try:
        msg = await nc.request(
            layout.query_subject(agent), encode(body, Encoding.JSON), timeout=timeout + 1.0
        )
    except nats.errors.NoRespondersError as err:
        raise AgentUnavailableError(
            f"no process of {agent!r} answers queries: is it running, and does it have any?"
        ) from err
    except nats.errors.TimeoutError as err:
        raise RequestTimeoutError(f"no answer from {agent!r} within {timeout + 1.0}s") from err
    reply = decode(msg.data, Encoding.JSON)
    if not isinstance(reply, dict):
        raise AgentUnavailableError(f"unexpected reply: {reply!r}")
    return reply
