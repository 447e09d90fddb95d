"""Records of an agent's stream: stored and new events, the log position, their headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from nats.aio.msg import Msg
from pydantic_core import from_json

from o_bus.wire.codec import Encoding
from o_bus.wire.headers import (
    CE_CODEVERSION,
    CE_EVENTVERSION,
    CE_ID,
    CE_REQUESTID,
    CE_SEQUENCE,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TRACEPARENT,
    CE_TRACESTATE,
    CE_TYPE,
    CE_WALSEQ,
    CONTENT_TYPE,
    O_ERROR_CODE,
    O_ERROR_MESSAGE,
    O_OUTCOME,
)
from o_bus.wire.wal_record import SPECVERSION, delivery_of

__all__ = [
    "LogPosition",
    "NewEvent",
    "StoredEvent",
    "delivery_of",
    "event_headers",
    "outcome_headers",
    "stream_seq_of",
    "utc_now",
]

H_SEQ: Final = CE_SEQUENCE
H_TYPE: Final = CE_TYPE
H_VERSION: Final = CE_EVENTVERSION
H_REQUEST: Final = CE_REQUESTID
H_WAL: Final = CE_WALSEQ
H_CODE: Final = CE_CODEVERSION
H_TIME: Final = CE_TIME


_JSON: Final = Encoding.JSON.value


@dataclass(slots=True, frozen=True)
class LogPosition:
    """Where a log ends: agent sequence, stream sequence and the WAL sequence it covers.

    ``guard_seq`` is the last sequence of the agent's stream (events, outcomes and fences): the
    value an append must expect. It is only known when read from the log's end.
    """

    seq: int = 0
    stream_seq: int = 0
    wal_seq: int = 0
    guard_seq: int = 0


@dataclass(slots=True)
class NewEvent:
    """A record ready to append: body (JSON) and CloudEvents headers. ``subject`` is the
    agent's event subject unless set (outcome records go to ``o.outcome.<agent>``)."""

    body: bytes
    headers: dict[str, str]
    subject: str | None = None


@dataclass(slots=True, frozen=True)
class StoredEvent:
    agent: str
    seq: int
    stream_seq: int
    type: str
    version: int
    data: bytes
    time: str
    request_id: str | None
    wal_seq: int
    code_version: str
    traceparent: str | None = None  # the request's W3C trace context, when it carried one

    @classmethod
    def from_msg(
        cls, agent: str, stream_seq: int, headers: dict[str, str], body: bytes
    ) -> StoredEvent:
        return cls(
            agent=agent,
            seq=int(headers[H_SEQ]),
            stream_seq=stream_seq,
            type=headers[H_TYPE],
            version=int(headers.get(H_VERSION, "1")),
            data=body,
            time=headers.get(H_TIME, ""),
            request_id=headers.get(H_REQUEST),
            wal_seq=int(headers.get(H_WAL, "0")),
            code_version=headers.get(H_CODE, ""),
            traceparent=headers.get(CE_TRACEPARENT),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "stream_seq": self.stream_seq,
            "time": self.time,
            "type": self.type,
            "version": self.version,
            "request_id": self.request_id,
            "data": from_json(self.data) if self.data else None,
        }


def event_headers(
    agent: str,
    seq: int,
    event_type: str,
    version: int,
    request_id: str,
    wal_seq: int,
    code_version: str,
    time: str,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> dict[str, str]:
    """Headers of an event; ``traceparent``: the trace context of the decision that made it."""
    headers = {
        CE_SPECVERSION: SPECVERSION,
        CE_ID: f"{agent}:{seq}",
        CE_SOURCE: f"o-bus/agents/{agent}",
        CE_SUBJECT: agent,
        H_TYPE: event_type,
        H_TIME: time,
        H_SEQ: str(seq),
        H_VERSION: str(version),
        H_REQUEST: request_id,
        H_WAL: str(wal_seq),
        H_CODE: code_version,
        CONTENT_TYPE: _JSON,
    }
    if traceparent:
        headers[CE_TRACEPARENT] = traceparent
        if tracestate:
            headers[CE_TRACESTATE] = tracestate
    return headers


def outcome_headers(
    request_id: str, wal_seq: int, outcome: str, code: str = "", message: str = ""
) -> dict[str, str]:
    """Headers of an outcome record: a request that produced no event (rejected or no-op)."""
    headers = {H_REQUEST: request_id, H_WAL: str(wal_seq), O_OUTCOME: outcome}
    if code:
        headers[O_ERROR_CODE] = code
        headers[O_ERROR_MESSAGE] = message[:1024]
    return headers


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def stream_seq_of(msg: Msg) -> int:
    """Stream sequence from a JetStream delivery subject, without building full metadata."""
    return delivery_of(msg)[0]
