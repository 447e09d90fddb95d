"""One stored message of a stream, as read back: what a JetStream message and a line of a
recorded history file both map to.

The offline replayer, the golden histories and the event-log backends speak this type, so
folding a history needs no NATS client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg

from o_bus.store.event_records import stream_seq_of
from o_bus.wire.headers import (
    NATS_LAST_SEQUENCE,
    NATS_NUM_PENDING,
    NATS_SEQUENCE,
    NATS_STREAM,
    NATS_SUBJECT,
    NATS_TIME_STAMP,
)

__all__ = ["LogRecord"]

_DIRECT_GET_HEADERS: Final = (
    NATS_STREAM,
    NATS_SEQUENCE,
    NATS_TIME_STAMP,
    NATS_SUBJECT,
    NATS_LAST_SEQUENCE,
    NATS_NUM_PENDING,
)


@dataclass(slots=True, frozen=True)
class LogRecord:
    """A stored message: stream sequence, subject, headers, body, and when it was stored
    (ISO-8601 UTC, empty when unknown)."""

    seq: int
    subject: str
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    time: str = ""

    @classmethod
    def from_delivery(cls, msg: Msg) -> LogRecord:
        """The record of a message delivered by a JetStream consumer (its stream sequence is
        read from the delivery subject; the stored time is not needed and left empty)."""
        return cls(stream_seq_of(msg), msg.subject, msg.headers or {}, msg.data)

    @classmethod
    def from_raw(cls, msg: RawStreamMsg) -> LogRecord:
        """The record of a message read with a direct or stream get (the headers a direct get
        adds about the stream are not part of the stored message and are left out)."""
        headers = dict(msg.headers or {})
        stamp = headers.get(NATS_TIME_STAMP, "")
        for name in _DIRECT_GET_HEADERS:
            headers.pop(name, None)
        return cls(
            seq=msg.seq or 0,
            subject=msg.subject or "",
            headers=headers,
            data=msg.data or b"",
            time=_iso(msg.time) if isinstance(msg.time, datetime) else stamp,
        )


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")
