"""CloudEvents 1.0 request envelope on NATS: binary mode (``ce-`` headers) or structured mode.

The splitter normalises both modes to one binary-mode form, which is what the WAL stores.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import from_json, to_json

from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.wire.attributes import (
    MAX_SOURCE_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_TIME_LENGTH,
    check_text,
)
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding, encoding_for
from o_bus.wire.headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE,
    O_ROUTE,
    W3C_TRACEPARENT,
    W3C_TRACESTATE,
)
from o_bus.wire.trace_context import checked_trace_context, trace_context_of_headers
from o_bus.wire.wal_record import SPECVERSION, WalRecord

__all__ = [
    "CE_ID",
    "CE_SOURCE",
    "CE_SPECVERSION",
    "CE_TYPE",
    "CONTENT_TYPE",
    "ROUTE_HEADER",
    "SPECVERSION",
    "RequestEnvelope",
    "parse_request",
    "request_id_of",
]

ROUTE_HEADER: Final = O_ROUTE  # on a WAL record: the canary code version that must decide it

MAX_ID_LENGTH: Final = 200

COMMAND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
REQUIRED_HEADERS = (CE_ID, CE_TYPE, CE_SOURCE, CE_SPECVERSION)


@dataclass(slots=True, frozen=True)
class RequestEnvelope:
    """A request in normalised binary form: CloudEvents attributes plus encoded data."""

    id: str
    type: str
    source: str
    data: bytes
    encoding: Encoding
    reply_encoding: Encoding
    time: str | None = None
    subject: str | None = None
    traceparent: str | None = None  # checked W3C trace context (None when absent or malformed)
    tracestate: str | None = None

    def wal_record(self, reply_to: str | None, route: str | None = None) -> WalRecord:
        """The WAL record of this request (``route``: the canary version to decide it)."""
        return WalRecord(
            self.id,
            self.type,
            self.data,
            self.encoding.value,
            self.source,
            reply_to or None,
            self.reply_encoding,
            route,
            self.time,
            self.subject,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
        )

    def wal_headers(self, dedup_key: str, reply: str | None) -> dict[str, str]:
        """Headers of the WAL record: CloudEvents binary mode, the dedup key and the reply inbox."""
        return self.wal_record(reply).to_headers(dedup_key)


def _check_attributes(
    ce_id: Any,
    ce_type: Any,
    source: Any,
    specversion: Any,
    time: Any = None,
    subject: Any = None,
) -> None:
    check_text("id", ce_id, MAX_ID_LENGTH)
    if not isinstance(ce_type, str) or not COMMAND_NAME.fullmatch(ce_type):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"CloudEvents 'type' must be a command name (letters, digits, _ . -), got {ce_type!r}",
        )
    if not isinstance(source, str) or not source:
        raise InvalidRequestError(
            ErrorCode.MISSING_ATTRIBUTE, "CloudEvents 'source' must be a non-empty string"
        )
    check_text("source", source, MAX_SOURCE_LENGTH)
    if specversion != SPECVERSION:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"CloudEvents 'specversion' must be {SPECVERSION!r}, got {specversion!r}",
        )
    check_text("time", time, MAX_TIME_LENGTH, required=False)
    check_text("subject", subject, MAX_SUBJECT_LENGTH, required=False)


def _parse_binary(
    headers: dict[str, str], body: bytes, content_type: str | None
) -> RequestEnvelope:
    missing = [name for name in REQUIRED_HEADERS if name not in headers]
    if missing:
        raise InvalidRequestError(
            ErrorCode.MISSING_ATTRIBUTE,
            f"missing CloudEvents header(s) {', '.join(missing)} "
            f"(binary mode needs {', '.join(REQUIRED_HEADERS)})",
            details={"missing": missing},
        )
    ce_id, ce_type = headers[CE_ID], headers[CE_TYPE]
    time, subject = headers.get(CE_TIME), headers.get(CE_SUBJECT)
    _check_attributes(ce_id, ce_type, headers[CE_SOURCE], headers[CE_SPECVERSION], time, subject)
    encoding = encoding_for(content_type)
    trace = trace_context_of_headers(headers, ce_id)
    return RequestEnvelope(
        id=ce_id,
        type=ce_type,
        source=headers[CE_SOURCE],
        data=body,
        encoding=encoding,
        reply_encoding=encoding,
        time=time,
        subject=subject,
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )


def _parse_structured(body: bytes) -> RequestEnvelope:
    try:
        event = from_json(body)
    except ValueError as err:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"structured CloudEvent is not valid JSON: {err}"
        ) from err
    if not isinstance(event, dict):
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, "structured CloudEvent must be a JSON object"
        )
    missing = [k for k in ("id", "type", "source", "specversion") if k not in event]
    if missing:
        raise InvalidRequestError(
            ErrorCode.MISSING_ATTRIBUTE,
            f"structured CloudEvent lacks attribute(s) {', '.join(missing)}",
            details={"missing": missing},
        )
    _check_attributes(
        event["id"],
        event["type"],
        event["source"],
        event["specversion"],
        event.get("time"),
        event.get("subject"),
    )
    encoding = encoding_for(event.get("datacontenttype"))
    if "data_base64" in event:
        try:
            data = base64.b64decode(event["data_base64"], validate=True)
        except (ValueError, TypeError) as err:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST, "data_base64 is not valid base64"
            ) from err
    elif encoding is Encoding.JSON:
        data = to_json(event["data"]) if "data" in event else b""
    else:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            "structured CloudEvent with a msgpack datacontenttype must carry data_base64",
        )
    trace = checked_trace_context(
        event.get(W3C_TRACEPARENT), event.get(W3C_TRACESTATE), event["id"]
    )
    return RequestEnvelope(
        id=event["id"],
        type=event["type"],
        source=event["source"],
        data=data,
        encoding=encoding,
        reply_encoding=Encoding.JSON,
        time=event.get("time"),
        subject=event.get("subject"),
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )


def parse_request(headers: dict[str, str] | None, body: bytes) -> RequestEnvelope:
    """Parse a request in either CloudEvents mode; raise ``InvalidRequestError`` if bad."""
    headers = headers or {}
    content_type = headers.get(CONTENT_TYPE) or headers.get(CONTENT_TYPE.lower())
    if content_type and content_type.split(";", 1)[0].strip().lower() == CLOUDEVENTS_JSON:
        return _parse_structured(body)
    return _parse_binary(headers, body, content_type)


def request_id_of(headers: dict[str, str] | None, body: bytes, max_bytes: int) -> str | None:
    """Best-effort id of a request that failed to parse: ``ce-id``, or the structured event's
    ``id`` (bodies above ``max_bytes`` are not read)."""
    headers = headers or {}
    found = headers.get(CE_ID)
    if found is None and len(body) <= max_bytes and body[:1] == b"{":
        try:
            event = from_json(body)
        except ValueError:
            return None
        found = event.get("id") if isinstance(event, dict) else None
    return found if isinstance(found, str) else None


def reply_encoding_of(headers: dict[str, str] | None) -> Encoding:
    """Best-effort reply encoding for a request that failed to parse (JSON unless msgpack)."""
    if not headers:
        return Encoding.JSON
    content_type = headers.get(CONTENT_TYPE) or headers.get(CONTENT_TYPE.lower()) or ""
    base = content_type.split(";", 1)[0].strip().lower()
    return Encoding.MSGPACK if base.endswith("msgpack") else Encoding.JSON
