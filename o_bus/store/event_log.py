"""The event-log contract: what the runtime, the replayers and the tools need of an agent's log.

One agent's log is one ordered stream of records: its events (subject ``o.evt.<agent>``, each a
CloudEvent with the agent's own 1-based ``ce-sequence``), outcome records of requests that
produced no event (``o.outcome.<agent>``) and takeover fences (``o.fence.<agent>``). Appends are
optimistically concurrent: a writer names the stream sequence it expects to be last, and a
writer that is behind gets a :class:`~o_bus.errors.ConcurrencyError`, never an interleaved log.

Implementations: :class:`~o_bus.store.jetstream_event_log.JetStreamEventLog` (the platform's)
and :class:`~o_bus.store.memory_event_log.InMemoryEventLog` (tests, offline tools). Both pass
the contract suite in ``tests/test_event_log.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from o_bus.store.event_records import (
    LogPosition,
    NewEvent,
    StoredEvent,
    delivery_of,
    event_headers,
    outcome_headers,
    stream_seq_of,
    utc_now,
)
from o_bus.store.log_record import LogRecord

__all__ = [
    "EventLog",
    "LogPosition",
    "LogRecord",
    "NewEvent",
    "StoredEvent",
    "delivery_of",
    "event_headers",
    "outcome_headers",
    "stream_seq_of",
    "utc_now",
]


class EventLog(Protocol):
    """One agent's event log."""

    @property
    def agent(self) -> str: ...

    async def last_position(self) -> LogPosition:
        """The end of the log (zeros when empty): the last event, the stream sequence appends
        must expect (``guard_seq``), and the WAL position covered by the last record."""
        ...

    async def append(
        self,
        expected_last: int,
        events: Sequence[NewEvent],
        timeout: float = 5.0,
        *,
        atomic: bool = False,
    ) -> int:
        """Append ``events`` (all, or with ``atomic`` all or nothing) right after stream
        sequence ``expected_last``; return the stream sequence of the last one. An empty
        ``events`` writes nothing and returns ``expected_last``. Raises ``ConcurrencyError``
        when the log does not end at ``expected_last``, ``StorageError`` when the store fails."""
        ...

    async def fence(self, expected_last: int, holder: str, wal_seq: int) -> int:
        """Write a takeover marker after ``expected_last``: a writer that has not seen it gets
        ``ConcurrencyError`` on its next append. Returns the marker's stream sequence."""
        ...

    async def event_at_stream_seq(self, stream_seq: int) -> StoredEvent | None:
        """The event at ``stream_seq``, or None if there is none (or it is another record)."""
        ...

    async def records_for_wal(self, wal_seq: int) -> list[LogRecord]:
        """The records (events or an outcome) written for WAL record ``wal_seq``, in order."""
        ...

    async def replay(
        self,
        on_event: Callable[[StoredEvent], bool | None],
        *,
        after_stream_seq: int = 0,
        until_stream_seq: int | None = None,
        follow: bool = False,
    ) -> int:
        """Call ``on_event`` with each event after ``after_stream_seq``, in order; stop at the
        log's end as it was when called (or ``until_stream_seq``), when ``on_event`` returns
        True, or never if ``follow``. An exception of ``on_event`` ends the replay and is
        raised. Returns the number of events seen."""
        ...
