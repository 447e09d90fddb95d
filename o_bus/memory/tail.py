"""Tail every record of an agent's stream (events, outcomes, fences) in batches, with flow
control, and look up the requests they answer in the WAL.

The memory projection needs more than the events :meth:`EventLog.replay` yields: the outcome
records of requests that produced no event are episodes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic_core import from_json, to_json

from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.event_records import delivery_of
from o_bus.wire.headers import (
    CE_TYPE,
    CONTENT_TYPE,
    NATS_NUM_PENDING,
    NATS_SEQUENCE,
    NATS_STATUS,
    NATS_TIME_STAMP,
)

__all__ = ["LogRecord", "RequestRecord", "StreamTail", "iso_time", "read_requests"]

log = logging.getLogger(__name__)
_BUFFER = 4096  # records held before the consumer is paused (flow control does the rest)
_PENDING = 262_144
_REQUEST_BYTES = 8192  # request bodies kept in an episode, beyond that only their size


def iso_time(unix_ns: int) -> str:
    """The bus's time format (``2026-01-31T12:00:00.000000Z``), comparable as text."""
    moment = datetime.fromtimestamp(unix_ns / 1e9, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True, frozen=True)
class LogRecord:
    """One record of an agent's stream: ``kind`` is ``evt``, ``outcome`` or ``fence``."""

    kind: str
    stream_seq: int
    time: str
    headers: dict[str, str]
    data: bytes


@dataclass(slots=True, frozen=True)
class RequestRecord:
    """What the WAL says of a request: its command, body (JSON when small) and arrival."""

    command: str | None
    request: Any
    requested_at: str | None


class StreamTail:
    """Hands batches of records after ``after_stream_seq`` to ``on_batch``, in order, forever
    (until cancelled). ``on_batch`` runs one batch at a time; while it is busy records queue up
    to a bound, then the consumer waits, and JetStream's flow control stops the sender."""

    def __init__(
        self,
        js: JetStreamContext,
        agent: str,
        on_batch: Callable[[list[LogRecord]], Awaitable[None]],
        *,
        batch_size: int = 1000,
    ) -> None:
        self.js, self.agent, self.on_batch, self.batch_size = js, agent, on_batch, batch_size
        self._buffer: list[LogRecord] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def _on_msg(self, msg: Msg) -> None:
        stream_seq, stored_ns, _ = delivery_of(msg)
        kind = msg.subject.split(".", 2)[1]
        self._buffer.append(
            LogRecord(kind, stream_seq, iso_time(stored_ns), dict(msg.headers or {}), msg.data)
        )
        self._ready.set()
        if len(self._buffer) >= _BUFFER:
            self._room.clear()
            await self._room.wait()  # pauses this subscription's deliveries

    async def run(self, after_stream_seq: int) -> None:
        try:
            sub = await self.js.subscribe(
                layout.agent_log_wildcard(self.agent),
                stream=layout.events_stream(self.agent),
                cb=self._on_msg,
                ordered_consumer=True,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=after_stream_seq + 1,
                ),
                # Far above what JetStream sends before flow control pauses it, so waiting
                # in the callback never makes the client drop messages.
                pending_msgs_limit=_PENDING,
            )
        except nats.errors.Error as err:
            raise StorageError(f"cannot tail {self.agent!r}'s log") from err
        try:
            while True:
                await self._ready.wait()
                batch = self._buffer[: self.batch_size]
                del self._buffer[: self.batch_size]
                if not self._buffer:
                    self._ready.clear()
                self._room.set()
                if batch:
                    await self.on_batch(batch)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def _nats_time(value: str | None) -> str | None:
    """``Nats-Time-Stamp`` (nanosecond precision) in the bus's microsecond format."""
    if not value:
        return None
    head, _, fraction = value.rstrip("Z").partition(".")
    return f"{head}.{(fraction + '000000')[:6]}Z"


def _request_record(headers: dict[str, str], body: bytes) -> RequestRecord:
    request: Any = {"bytes": len(body)}
    if len(body) <= _REQUEST_BYTES and "json" in headers.get(CONTENT_TYPE, "application/json"):
        with contextlib.suppress(ValueError):
            request = from_json(body) if body else {}
    return RequestRecord(headers.get(CE_TYPE), request, _nats_time(headers.get(NATS_TIME_STAMP)))


async def _read_batch(
    nc: Client, subject: str, start: int, count: int, timeout: float
) -> tuple[list[tuple[int, dict[str, str], bytes]], bool]:
    """Up to ``count`` WAL records of ``subject`` from WAL sequence ``start`` in one batched
    direct get; also whether more follow."""
    found: list[tuple[int, dict[str, str], bytes]] = []
    more = {"pending": 0}
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Msg) -> None:
        headers = dict(msg.headers or {})
        status = headers.get(NATS_STATUS)
        if status is not None and not msg.data:
            more["pending"] = int(headers.get(NATS_NUM_PENDING, "0") or 0)
            if not done.done():
                done.set_result(status)
            return
        found.append((int(headers.get(NATS_SEQUENCE, "0")), headers, msg.data))

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_msg)
    try:
        request = {"seq": start, "batch": count, "next_by_subj": subject}
        await nc.publish(f"$JS.API.DIRECT.GET.{layout.WAL_STREAM}", to_json(request), reply=inbox)
        status = await asyncio.wait_for(done, timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    if status not in ("204", "404"):
        raise StorageError(f"batched read of the WAL answered status {status}")
    return found, more["pending"] > 0


async def read_requests(
    nc: Client, agent: str, wal_seqs: Iterable[int], timeout: float = 10.0
) -> dict[int, RequestRecord]:
    """The WAL records of ``wal_seqs`` (of ``agent``), read in batches of direct gets. A
    record no longer in the WAL is left out (the episode then has no request part)."""
    wanted = sorted({seq for seq in wal_seqs if seq > 0})
    found: dict[int, RequestRecord] = {}
    if not wanted:
        return found
    keep, subject = set(wanted), layout.wal_subject(agent)
    start, last = wanted[0], wanted[-1]
    try:
        while start <= last:
            batch, more = await _read_batch(nc, subject, start, min(len(keep), 1000), timeout)
            for seq, headers, body in batch:
                if seq in keep:
                    found[seq] = _request_record(headers, body)
            if not batch or not more:
                break
            start = batch[-1][0] + 1
    except (nats.errors.Error, TimeoutError, StorageError) as err:
        log.warning("cannot read requests of %s from the WAL: %s", agent, err)
    return found
