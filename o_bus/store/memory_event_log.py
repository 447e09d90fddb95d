"""An agent's event log in memory, with the semantics of the JetStream one.

For unit tests of the decision logic without a server, and for tools that fold a recorded
history. Logs of the same agent share one :class:`MemoryStream`, as JetStream logs of the same
agent share its stream, so two writers race exactly as they do on a server: each append yields
to the event loop once (where a server round trip would) before it checks the last sequence.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable, Sequence

from o_bus.errors import ConcurrencyError
from o_bus.store import layout
from o_bus.store.event_records import H_SEQ, H_WAL, LogPosition, NewEvent, StoredEvent, utc_now
from o_bus.store.log_record import LogRecord
from o_bus.wire.headers import O_HOLDER

__all__ = ["InMemoryEventLog", "MemoryStream"]


class MemoryStream:
    """The stored records of one agent's stream (events, outcomes and fences), in order of
    their stream sequence (recorded ones may start later than 1 or have gaps)."""

    def __init__(self, records: Iterable[LogRecord] = ()) -> None:
        self.records: list[LogRecord] = list(records)
        self._grown = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq if self.records else 0

    def add(self, subject: str, headers: dict[str, str], data: bytes) -> int:
        seq = self.last_seq + 1
        self.records.append(LogRecord(seq, subject, dict(headers), data, utc_now()))
        return seq

    def notify(self) -> None:
        grown, self._grown = self._grown, asyncio.Event()
        grown.set()

    async def grown(self) -> None:
        """Wait until the next append."""
        await self._grown.wait()


def _wal_of(record: LogRecord) -> int:
    return int(record.headers.get(H_WAL, "0"))


def _seq_of(record: LogRecord) -> int:
    return record.seq


class InMemoryEventLog:
    """One agent's event log held in a :class:`MemoryStream` (a new, empty one by default)."""

    def __init__(self, agent: str, stream: MemoryStream | None = None) -> None:
        self.agent = agent
        self.stream = stream if stream is not None else MemoryStream()
        self.subject = layout.event_subject(agent)

    def _check(self, expected_last: int) -> None:
        if self.stream.last_seq != expected_last:
            raise ConcurrencyError(self.agent, expected_last)

    async def last_position(self) -> LogPosition:
        records = self.stream.records
        if not records:
            return LogPosition()
        last_any = records[-1]
        last_event = next((r for r in reversed(records) if r.subject == self.subject), None)
        if last_event is None:
            return LogPosition(wal_seq=_wal_of(last_any), guard_seq=last_any.seq)
        return LogPosition(
            int(last_event.headers[H_SEQ]),
            last_event.seq,
            max(_wal_of(last_event), _wal_of(last_any)),
            last_any.seq,
        )

    async def append(
        self,
        expected_last: int,
        events: Sequence[NewEvent],
        timeout: float = 5.0,
        *,
        atomic: bool = False,
    ) -> int:
        if not events:
            return expected_last
        await asyncio.sleep(0)  # where the server round trip lets other writers in
        self._check(expected_last)
        last = expected_last
        for event in events:  # nothing awaits here: a batch is all or nothing
            last = self.stream.add(event.subject or self.subject, event.headers, event.body)
        self.stream.notify()
        return last

    async def fence(self, expected_last: int, holder: str, wal_seq: int) -> int:
        await asyncio.sleep(0)
        self._check(expected_last)
        headers = {O_HOLDER: holder, H_WAL: str(wal_seq)}
        seq = self.stream.add(layout.fence_subject(self.agent), headers, b"")
        self.stream.notify()
        return seq

    def _event(self, record: LogRecord) -> StoredEvent:
        return StoredEvent.from_msg(self.agent, record.seq, record.headers, record.data)

    async def event_at_stream_seq(self, stream_seq: int) -> StoredEvent | None:
        records = self.stream.records
        index = bisect.bisect_left(records, stream_seq, key=_seq_of)
        if index == len(records) or records[index].seq != stream_seq:
            return None
        record = records[index]
        return self._event(record) if record.subject == self.subject else None

    async def records_for_wal(self, wal_seq: int) -> list[LogRecord]:
        # WAL sequences never decrease along the stream: the records are one run.
        records = self.stream.records
        index = bisect.bisect_left(records, wal_seq, key=_wal_of)
        found: list[LogRecord] = []
        while index < len(records) and _wal_of(records[index]) == wal_seq:
            found.append(records[index])
            index += 1
        return found

    async def replay(
        self,
        on_event: Callable[[StoredEvent], bool | None],
        *,
        after_stream_seq: int = 0,
        until_stream_seq: int | None = None,
        follow: bool = False,
    ) -> int:
        if not follow:
            end = self.stream.last_seq
            until_stream_seq = end if until_stream_seq is None else min(until_stream_seq, end)
        seen = 0
        position = bisect.bisect_right(self.stream.records, after_stream_seq, key=_seq_of)
        while True:
            records = self.stream.records
            while position < len(records):
                record = records[position]
                position += 1
                if until_stream_seq is not None and record.seq > until_stream_seq:
                    return seen
                if record.subject != self.subject:
                    continue
                seen += 1
                if on_event(self._event(record)):
                    return seen
            if not follow:
                return seen
            await self.stream.grown()
