"""The records of the request path: a request as the WAL stores it, and the question a
splitter asks an agent about a request id the WAL already holds.

The splitter writes :class:`WalRecord` headers; the agent, the shadow, the canary and the
offline replayer read them back with :meth:`WalRecord.from_message` (or ``from_stored``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, Protocol

from o_bus.wire.codec import Encoding
from o_bus.wire.headers import (
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TRACEPARENT,
    CE_TRACESTATE,
    CE_TYPE,
    CONTENT_TYPE,
    NATS_MSG_ID,
    NATS_TIME_STAMP,
    O_REPLY,
    O_REPLY_ENCODING,
    O_ROUTE,
    O_WAL_SEQ,
)

__all__ = [
    "SPECVERSION",
    "DuplicateQuery",
    "WalRecord",
    "delivery_of",
    "nats_time_ns",
    "reply_encoding_from",
]

SPECVERSION: Final = "1.0"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Delivery(Protocol):
    reply: str


def delivery_of(msg: _Delivery) -> tuple[int, int, int]:
    """(stream sequence, stored-at unix ns, messages pending) of a JetStream delivery."""
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    # $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<x>
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7]), int(tokens[8])
    return int(tokens[7]), int(tokens[9]), int(tokens[10])


def nats_time_ns(value: str | None) -> int:
    """Unix nanoseconds of a ``Nats-Time-Stamp`` (RFC 3339, nanosecond precision); 0 if absent.

    Exact to the nanosecond, so a record read back by a direct get carries the same time as
    the delivery the live agent saw."""
    if not value:
        return 0
    head, _, fraction = value.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(head).replace(tzinfo=UTC) - _EPOCH
    whole = seconds.days * 86_400 + seconds.seconds
    return whole * 1_000_000_000 + int((fraction + "000000000")[:9])


def reply_encoding_from(headers: dict[str, str]) -> Encoding:
    """The encoding a WAL record or a duplicate query asks the reply in."""
    if headers.get(O_REPLY_ENCODING) == Encoding.MSGPACK:
        return Encoding.MSGPACK
    return Encoding.JSON


class WalRecord(NamedTuple):
    """One accepted request, in the normalised binary form the splitter writes to the WAL.
    Immutable; a tuple because one is read per request on the agent's hot path.

    ``content_type`` is kept as written (the decider maps it to an encoding, so a bad one is
    the request's rejection, not a crash of the reader). ``wal_seq`` and ``accepted_ns`` (when
    the WAL stored it, unix ns) are known once the record is read back from the stream.
    """

    request_id: str
    command: str
    data: bytes
    content_type: str | None = None
    source: str = ""
    reply_to: str | None = None
    reply_encoding: Encoding = Encoding.JSON
    route: str | None = None
    time: str | None = None
    subject: str | None = None
    wal_seq: int = 0
    accepted_ns: int = 0
    traceparent: str | None = None  # W3C trace context: the span that accepted the request
    tracestate: str | None = None

    def to_headers(self, dedup_key: str) -> dict[str, str]:
        """Headers of the WAL record: CloudEvents binary mode, the dedup key, reply inbox,
        reply encoding, (for a canary) the code version that must decide it, and the trace
        context."""
        headers = {
            CE_ID: self.request_id,
            CE_TYPE: self.command,
            CE_SOURCE: self.source,
            CE_SPECVERSION: SPECVERSION,
            CONTENT_TYPE: self.content_type or Encoding.JSON.value,
            NATS_MSG_ID: dedup_key,
            O_REPLY_ENCODING: self.reply_encoding.value,
        }
        if self.reply_to:
            headers[O_REPLY] = self.reply_to
        if self.time:
            headers[CE_TIME] = self.time
        if self.subject:
            headers[CE_SUBJECT] = self.subject
        if self.route:
            headers[O_ROUTE] = self.route
        if self.traceparent:
            headers[CE_TRACEPARENT] = self.traceparent
            if self.tracestate:
                headers[CE_TRACESTATE] = self.tracestate
        return headers

    @classmethod
    def from_headers(
        cls, headers: dict[str, str], data: bytes, wal_seq: int = 0, accepted_ns: int = 0
    ) -> WalRecord:
        get = headers.get
        return cls(
            get(CE_ID, ""),
            get(CE_TYPE, ""),
            data,
            get(CONTENT_TYPE),
            get(CE_SOURCE, ""),
            get(O_REPLY),
            Encoding.MSGPACK if get(O_REPLY_ENCODING) == Encoding.MSGPACK else Encoding.JSON,
            get(O_ROUTE),
            get(CE_TIME),
            get(CE_SUBJECT),
            wal_seq,
            accepted_ns,
            get(CE_TRACEPARENT),
            get(CE_TRACESTATE),
        )

    @classmethod
    def from_message(cls, msg: Any) -> WalRecord:
        """The record of a JetStream delivery from the WAL stream (sequence and time from
        the delivery's acknowledgement subject)."""
        wal_seq, accepted_ns, _ = delivery_of(msg)
        return cls.from_headers(msg.headers or {}, msg.data or b"", wal_seq, accepted_ns)

    @classmethod
    def from_stored(cls, seq: int, headers: dict[str, str] | None, data: bytes | None) -> WalRecord:
        """The record of a direct get (or a recorded copy): time from ``Nats-Time-Stamp``."""
        headers = headers or {}
        return cls.from_headers(
            headers, data or b"", seq, nats_time_ns(headers.get(NATS_TIME_STAMP))
        )


@dataclass(slots=True, frozen=True)
class DuplicateQuery:
    """A splitter's question to an agent (``o.ctl.<agent>.dup``): what was the reply to
    ``request_id``, stored at ``wal_seq``? Its reply subject is the re-sender's inbox."""

    request_id: str
    wal_seq: int
    reply_encoding: Encoding = Encoding.JSON

    def to_headers(self) -> dict[str, str]:
        return {
            CE_ID: self.request_id,
            O_WAL_SEQ: str(self.wal_seq),
            O_REPLY_ENCODING: self.reply_encoding.value,
        }

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> DuplicateQuery:
        headers = headers or {}
        try:
            wal_seq = int(headers.get(O_WAL_SEQ, "0"))
        except ValueError:
            wal_seq = 0
        return cls(headers.get(CE_ID, ""), wal_seq, reply_encoding_from(headers))
