"""W3C trace context (``traceparent``, ``tracestate``) as the CloudEvents distributed-tracing
extension: checked where a request enters, then carried unchanged (or replaced by the span of
whoever traces) through the WAL record, the events and the tool calls.

Pure string handling, no tracing library: a bus with tracing off pays only for reading and
copying these two headers.
"""

from __future__ import annotations

import logging
import re
from typing import Final, NamedTuple

from o_bus.wire.headers import CE_TRACEPARENT, CE_TRACESTATE, W3C_TRACEPARENT, W3C_TRACESTATE

__all__ = [
    "MAX_TRACESTATE_LENGTH",
    "TRACEPARENT_PATTERN",
    "TraceContext",
    "TraceParent",
    "checked_trace_context",
    "format_traceparent",
    "parse_traceparent",
    "trace_context_of_headers",
    "valid_tracestate",
]

log = logging.getLogger(__name__)

# version "-" trace-id "-" parent-id "-" trace-flags; a later version may append "-" fields.
TRACEPARENT_PATTERN: Final = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$"
_TRACEPARENT: Final = re.compile(
    r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?$"
)
_ZERO_TRACE: Final = "0" * 32
_ZERO_PARENT: Final = "0" * 16
MAX_TRACESTATE_LENGTH: Final = 512
_MAX_TRACESTATE_MEMBERS: Final = 32
_TRACESTATE_KEY: Final = (
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
)
_TRACESTATE_MEMBER: Final = re.compile(
    rf"^{_TRACESTATE_KEY}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{{0,255}}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$"
)


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: ids as lowercase hex, flags as an int (bit 0: sampled)."""

    trace_id: str
    parent_id: str
    flags: int
    version: str = "00"

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)


class TraceContext(NamedTuple):
    """The two headers of a request's trace context, both checked (or both None)."""

    traceparent: str | None = None
    tracestate: str | None = None


def parse_traceparent(value: str) -> TraceParent | None:
    """The parts of a valid ``traceparent`` (W3C Trace Context level 1), else None.

    Version ``ff`` and all-zero ids are invalid; version ``00`` has exactly four fields; a
    higher version may carry more after the flags (kept out of the result, as the spec says)."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    if version == "00" and rest is not None:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16), version)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """The version-00 ``traceparent`` of a span."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def valid_tracestate(value: str) -> bool:
    """Whether ``value`` is a well-formed ``tracestate`` list (empty members allowed)."""
    if len(value) > MAX_TRACESTATE_LENGTH:
        return False
    members = [m.strip() for m in value.split(",")]
    present = [m for m in members if m]
    if len(present) > _MAX_TRACESTATE_MEMBERS:
        return False
    return all(_TRACESTATE_MEMBER.match(m) for m in present)


def checked_trace_context(
    traceparent: object, tracestate: object, request_id: object = None
) -> TraceContext:
    """The trace context a request may carry on: a malformed ``traceparent`` is dropped (with
    its ``tracestate``, which means nothing without it), a malformed ``tracestate`` alone is
    dropped; each with a log line, never an error for the request."""
    if traceparent is None:
        return TraceContext()
    if not isinstance(traceparent, str) or parse_traceparent(traceparent) is None:
        log.warning(
            "request %r: malformed traceparent %r dropped (the request goes on untraced)",
            request_id,
            str(traceparent)[:80],
        )
        return TraceContext()
    if tracestate is None:
        return TraceContext(traceparent)
    if not isinstance(tracestate, str) or not valid_tracestate(tracestate):
        log.warning("request %r: malformed tracestate %r dropped", request_id, str(tracestate)[:80])
        return TraceContext(traceparent)
    return TraceContext(traceparent, tracestate or None)


def trace_context_of_headers(headers: dict[str, str], request_id: object = None) -> TraceContext:
    """The checked trace context of a binary-mode request: the CloudEvents extension headers
    (``ce-traceparent``), else the plain W3C ones (``traceparent``) a propagator sets."""
    traceparent = headers.get(CE_TRACEPARENT)
    if traceparent is None:
        traceparent = headers.get(W3C_TRACEPARENT)
        if traceparent is None:
            return TraceContext()
        tracestate = headers.get(W3C_TRACESTATE)
    else:
        tracestate = headers.get(CE_TRACESTATE)
    return checked_trace_context(traceparent, tracestate, request_id)
