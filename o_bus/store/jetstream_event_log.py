"""An agent's event log on JetStream (:class:`~o_bus.store.event_log.EventLog`): optimistically
concurrent appends; streamed reads.

Each agent has its own stream ``O_EVT_<agent>``: its events on subject ``o.evt.<agent>`` as
CloudEvents in binary mode (``ce-sequence`` is the agent's own 1-based sequence), outcomes of
requests that produced no event on ``o.outcome.<agent>``, and takeover fences on
``o.fence.<agent>``. Every append is checked against the stream's last sequence and the
previous message's id, so a second writer gets a :class:`ConcurrencyError`, never an
interleaved log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError as JsNotFoundError
from nats.nuid import NUID
from pydantic_core import from_json

from o_bus.config import CONSUMER_IDLE_HEARTBEAT
from o_bus.errors import ConcurrencyError, StorageError
from o_bus.store import layout
from o_bus.store.event_records import (
    H_SEQ,
    H_WAL,
    LogPosition,
    NewEvent,
    StoredEvent,
    stream_seq_of,
)
from o_bus.store.log_record import LogRecord
from o_bus.wire.headers import (
    NATS_BATCH_COMMIT,
    NATS_BATCH_ID,
    NATS_BATCH_SEQUENCE,
    NATS_EXPECTED_LAST_MSG_ID,
    NATS_EXPECTED_LAST_SEQUENCE,
    NATS_MSG_ID,
    O_HOLDER,
)

JsPushSubscription = JetStreamContext.PushSubscription
# JetStream: wrong last sequence, wrong last message id.
CONFLICT_CODES: Final = frozenset({10071, 10070})

__all__ = ["JetStreamEventLog"]


class _NoStream(Exception):
    """Nothing listens on the agent's subjects: its stream does not exist (yet)."""


class JetStreamEventLog:
    """Append to and read one agent's events (stream ``O_EVT_<agent>``)."""

    def __init__(self, nc: Client, js: JetStreamContext, agent: str) -> None:
        self.nc = nc
        self.js = js
        self.agent = agent
        self.stream = layout.events_stream(agent)
        self.subject = layout.event_subject(agent)
        self._writer = NUID().next().decode()
        self._counter = 0
        self._replicated: bool | None = None  # learnt from the stream on the first append

    async def last_position(self) -> LogPosition:
        """The end of the log (zeros when empty): the last event, the stream sequence appends
        must expect, and the WAL position covered by the last event or outcome."""
        try:
            info = await self.js.stream_info(self.stream)
        except JsNotFoundError:
            return LogPosition()
        except nats.errors.Error as err:
            raise StorageError(f"cannot read the end of {self.agent!r}'s log") from err
        guard_seq = info.state.last_seq if info.state.messages else 0
        if guard_seq == 0:
            return LogPosition()
        last_any = await self._get(seq=guard_seq)
        last_event = (
            last_any
            if last_any is not None and last_any.subject == self.subject
            else await self._get(subject=self.subject)
        )
        guard_wal = int((last_any.headers or {}).get(H_WAL, "0")) if last_any else 0
        if last_event is None:
            return LogPosition(wal_seq=guard_wal, guard_seq=guard_seq)
        headers = last_event.headers or {}
        return LogPosition(
            int(headers[H_SEQ]),
            last_event.seq or 0,
            max(int(headers.get(H_WAL, "0")), guard_wal),
            guard_seq,
        )

    async def _get(
        self, *, seq: int | None = None, subject: str | None = None, direct: bool = True
    ) -> RawStreamMsg | None:
        """A record, or None; ``direct``: any replica may answer (the leader otherwise)."""
        try:
            return await self.js.get_msg(self.stream, seq, subject=subject, direct=direct)
        except (JsNotFoundError, nats.errors.NoRespondersError):  # no such message or stream
            return None
        except nats.errors.Error as err:
            raise StorageError(f"cannot read {self.agent!r}'s log") from err

    async def _get_stored(self, seq: int) -> RawStreamMsg | None:
        """Record ``seq``, known to be stored. A direct get may be answered by a replica that
        has not caught up yet, and would say it is not there: the stream's leader is asked
        then (a search that took it for missing would go the wrong way)."""
        return await self._get(seq=seq) or await self._get(seq=seq, direct=False)

    async def fence(self, expected_last: int, holder: str, wal_seq: int) -> int:
        """Write a takeover marker: from now on, an append by a writer that has not seen it
        (for example a paused old active) fails with ``ConcurrencyError``."""
        headers = {
            NATS_EXPECTED_LAST_SEQUENCE: str(expected_last),
            NATS_MSG_ID: self._next_id(),
            O_HOLDER: holder,
            H_WAL: str(wal_seq),
        }
        return await self._acknowledged(
            layout.fence_subject(self.agent), b"", headers, 5.0, expected_last
        )

    async def event_at_stream_seq(self, stream_seq: int) -> StoredEvent | None:
        msg = await self._get(seq=stream_seq)
        if msg is None or msg.subject != self.subject or not msg.headers:
            return None
        return StoredEvent.from_msg(self.agent, stream_seq, msg.headers, msg.data or b"")

    async def records_for_wal(self, wal_seq: int) -> list[LogRecord]:
        """The records (events or an outcome) written for WAL record ``wal_seq``, if any.

        Records carry the WAL sequence they came from, and it never decreases along the
        stream, so this is a binary search of direct gets: about 20 reads for a million
        records, however old the request is."""
        end = await self.last_position()
        lo, hi = 1, end.guard_seq
        first = 0
        while lo <= hi:  # the first record with a WAL sequence >= wal_seq
            mid = (lo + hi) // 2
            msg = await self._get_stored(mid)
            found = int((msg.headers or {}).get(H_WAL, "0")) if msg is not None else 0
            if found >= wal_seq:
                first, hi = mid, mid - 1
            else:
                lo = mid + 1
        records: list[LogRecord] = []
        seq = first
        while first and seq <= end.guard_seq:
            msg = await self._get_stored(seq)
            if msg is None or int((msg.headers or {}).get(H_WAL, "0")) != wal_seq:
                break
            records.append(LogRecord.from_raw(msg))
            seq += 1
        return records

    def _next_id(self) -> str:
        self._counter += 1
        return f"{self._writer}.{self._counter}"

    async def append(
        self,
        expected_last: int,
        events: Sequence[NewEvent],
        timeout: float = 5.0,
        *,
        atomic: bool = False,
    ) -> int:
        """Append ``events`` right after stream sequence ``expected_last``; return the stream
        sequence of the last one.

        The first message expects ``expected_last``; each further one expects the previous
        one's unique message id, so nothing can be interleaved and only the last message needs
        an acknowledgement: if it is stored, all are. With ``atomic`` the group is one atomic
        batch (all or nothing), which requests producing several events need. On a replicated
        stream every group of several messages is an atomic batch: its replicas check an
        expected message id only as they apply a write, and a chain broken by a racing writer
        (a takeover) would fail there and stall the stream ("last msgid mismatch"), whereas a
        batch is checked whole by the leader before it is proposed.

        Raises ``ConcurrencyError`` if another writer got there first, ``StorageError`` if
        JetStream failed or did not answer in time (the outcome is then unknown: re-read the
        log before writing again).
        """
        if len(events) > 1 and not atomic:
            atomic = await self._is_replicated()
        try:
            return await self._append(expected_last, events, timeout, atomic)
        except _NoStream:
            if expected_last != 0:
                raise StorageError(
                    f"no server took the append to {self.agent!r}'s log: its stream is "
                    "missing or has no leader (a cluster electing one)"
                ) from None
        # First append of a new agent: create its stream (lazily, once) and go again.
        from o_bus.store.provision import ensure_agent_stream

        await ensure_agent_stream(self.js, self.agent)
        return await self._append(expected_last, events, timeout, atomic)

    async def _is_replicated(self) -> bool:
        if self._replicated is None:
            try:
                info = await self.js.stream_info(self.stream)
            except JsNotFoundError:
                return False  # created on this first append, with the recorded settings
            except nats.errors.Error as err:
                raise StorageError(f"cannot read the event stream of {self.agent!r}") from err
            self._replicated = (info.config.num_replicas or 1) > 1
        return self._replicated

    async def _append(
        self, expected_last: int, events: Sequence[NewEvent], timeout: float, atomic: bool
    ) -> int:
        count = len(events)
        if count == 0:
            return expected_last
        publish, stream_subject = self.nc.publish, self.subject
        batch_id = self._writer + str(self._counter) if atomic and count > 1 else None
        previous = ""
        for index, event in enumerate(events, 1):
            headers = event.headers
            message_id = self._next_id()
            headers[NATS_MSG_ID] = message_id
            if index == 1:
                headers[NATS_EXPECTED_LAST_SEQUENCE] = str(expected_last)
            elif batch_id is None:
                headers[NATS_EXPECTED_LAST_MSG_ID] = previous
            if batch_id is not None:
                headers[NATS_BATCH_ID] = batch_id
                headers[NATS_BATCH_SEQUENCE] = str(index)
                if index == count:
                    headers[NATS_BATCH_COMMIT] = "1"
            previous = message_id
            if index < count:
                await publish(event.subject or stream_subject, event.body, headers=headers)
        last = events[-1]
        return await self._acknowledged(
            last.subject or stream_subject, last.body, last.headers, timeout, expected_last
        )

    async def _acknowledged(
        self, subject: str, body: bytes, headers: dict[str, str], timeout: float, expected: int
    ) -> int:
        try:
            reply = await self.nc.request(subject, body, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError as err:
            raise _NoStream from err
        except nats.errors.TimeoutError as err:
            raise StorageError(f"append to {self.agent!r}'s log got no acknowledgement") from err
        ack = from_json(reply.data)
        error = ack.get("error")
        if error:
            if error.get("err_code") in CONFLICT_CODES:
                raise ConcurrencyError(self.agent, expected)
            raise StorageError(
                f"append to {self.agent!r}'s log refused: {error.get('description')}",
                details={"nats_error": error},
            )
        return int(ack["seq"])

    async def replay(
        self,
        on_event: Callable[[StoredEvent], bool | None],
        *,
        after_stream_seq: int = 0,
        until_stream_seq: int | None = None,
        follow: bool = False,
    ) -> int:
        """Stream events after ``after_stream_seq`` to ``on_event`` (called in order).

        Stops at the log's end as it was when called (or ``until_stream_seq``), when
        ``on_event`` returns True, or never if ``follow``. Uses an ordered push consumer with
        flow control, so memory stays flat however long the log. Returns the events seen.
        """
        if not follow:
            end = (await self.last_position()).stream_seq
            until_stream_seq = end if until_stream_seq is None else min(until_stream_seq, end)
            if until_stream_seq <= after_stream_seq:
                return 0
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen = 0
        agent = self.agent

        async def handle(msg: Msg) -> None:
            nonlocal seen
            if done.done():
                return
            stream_seq = stream_seq_of(msg)
            if until_stream_seq is not None and stream_seq > until_stream_seq:
                done.set_result(None)
                return
            try:
                stop = on_event(
                    StoredEvent.from_msg(agent, stream_seq, msg.headers or {}, msg.data)
                )
            except BaseException as err:  # surfaced to the caller, not lost in the callback
                done.set_exception(err)
                return
            seen += 1
            if stop or (until_stream_seq is not None and stream_seq >= until_stream_seq):
                done.set_result(None)

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after_stream_seq + 1,
            idle_heartbeat=CONSUMER_IDLE_HEARTBEAT,
        )
        try:
            sub = await self.js.subscribe(
                self.subject,
                stream=self.stream,
                cb=handle,
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=4096,
            )
        except nats.errors.Error as err:
            raise StorageError(f"cannot read {self.agent!r}'s log") from err
        try:
            await done
        finally:
            await self._discard(sub)
        return seen

    async def _discard(self, sub: JsPushSubscription) -> None:
        """Unsubscribe and delete the consumer now, rather than when it times out: replays
        are frequent (recovery, CLI) and idle consumers count against server limits."""
        name = None
        with contextlib.suppress(nats.errors.Error):
            name = (await sub.consumer_info()).name
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        if name:
            with contextlib.suppress(nats.errors.Error):
                await self.js.delete_consumer(self.stream, name)
