"""The group committer: makes decided requests durable in atomic batches, then replies.

The lifecycle shell stages each request's outcome without awaiting; one flusher task appends
the staged records in batches (one append in flight at a time, so each batch's
optimistic-concurrency check is exact), moves the committed position, and only then sends
the replies (through the one reply encoder) and keeps ok replies for duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from o_bus.config import RuntimeConfig
from o_bus.events.model import State
from o_bus.runtime.group_commit import Outcome, ReplyCache, StagedRequests
from o_bus.runtime.metrics import RequestMetrics
from o_bus.store.event_log import EventLog
from o_bus.wire.codec import Encoding
from o_bus.wire.reply import encode_reply

__all__ = ["Committed", "GroupCommitter"]

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Committed:
    """The last durable position: state, agent sequence, stream sequence of the last event,
    and the last WAL record whose outcome is durable. Replaced as a whole, never in parts."""

    state: State
    seq: int = 0
    stream_seq: int = 0
    wal: int = 0


class GroupCommitter:
    def __init__(
        self,
        nc: Client,
        eventlog: EventLog,
        config: RuntimeConfig,
        committed: Committed,
        *,
        after_batch: Callable[[Committed], None] = lambda committed: None,
    ) -> None:
        self.nc, self.log, self.config = nc, eventlog, config
        self.committed = committed
        self.guard_seq = 0  # what the next append must expect (events and fences)
        self.after_batch = after_batch
        self.metrics = RequestMetrics()
        self.staged = StagedRequests(config.max_batch)
        self.replies = ReplyCache(config.reply_cache)
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is staged
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.name = ""

    def start(self, name: str) -> None:
        self.name = name
        self._task = asyncio.create_task(self._flush_loop(), name=f"flush-{name}")

    def stage(self, outcome: Outcome) -> None:
        """Queue ``outcome`` for the next batch (no await: called on the hot path)."""
        self.staged.put(outcome)
        self._idle.clear()
        self._wake.set()

    def pending(self, request_id: str) -> Outcome | None:
        """The outcome of ``request_id`` if it is staged and not yet durable."""
        return self.staged.by_request.get(request_id)

    def cached_reply(self, request_id: str) -> bytes | None:
        """The encoded (JSON) ok reply to ``request_id``, if still remembered."""
        return self.replies.get(request_id)

    def forget_replies(self) -> None:
        """Drop remembered replies (they were given by code no longer in use)."""
        self.replies = ReplyCache(self.config.reply_cache)

    async def idle(self) -> None:
        """Return once everything staged is durable and replied to (or the flusher failed)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Make what is staged durable, then stop the flusher."""
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        waiting = asyncio.ensure_future(self._idle.wait())
        await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        task.cancel()
        await asyncio.gather(task, waiting, return_exceptions=True)

    async def publish_reply(self, subject: str, reply: dict[str, Any], encoding: Encoding) -> None:
        body, headers = encode_reply(reply, encoding)
        await self.nc.publish(subject, body, headers=headers)

    async def _flush_loop(self) -> None:
        staged, wake, eventlog = self.staged, self._wake, self.log
        try:
            while True:
                await wake.wait()
                wake.clear()
                while len(staged):
                    batch = staged.take()
                    events = [event for outcome in batch for event in outcome.events]
                    stream_seq = self.committed.stream_seq
                    if events:
                        self.guard_seq = await eventlog.append(
                            self.guard_seq,
                            events,
                            self.config.append_timeout,
                            atomic=any(len(outcome.events) > 1 for outcome in batch),
                        )
                        stream_seq = self.guard_seq
                    last = batch[-1]
                    self.committed = Committed(
                        last.state_after, last.seq_after, stream_seq, last.wal_seq
                    )
                    staged.done(batch)
                    await self._send_replies(batch)
                    self.after_batch(self.committed)
                self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the flusher must never die silently
            # The log and the in-memory state may now disagree: stop serving and let the
            # host recover from the log. Unreplied requests stay in the WAL and are processed
            # after recovery; clients that retry with the same id get the original reply.
            log.error("agent %s stops: %s", self.name, err)
            staged.drain()
            self._idle.set()
            if not self.failed.done():
                self.failed.set_result(err)

    async def _send_replies(self, batch: list[Outcome]) -> None:
        publish, cache, observe = self.nc.publish, self.replies, self.metrics.observe
        now_ns = time.time_ns()
        for outcome in batch:
            reply = outcome.reply
            ok = reply["ok"]
            observe((now_ns - outcome.accepted_ns) / 1e6, not ok)
            if ok:
                body, headers = encode_reply(reply, Encoding.JSON)
                cache.put(outcome.request_id, body)
                if outcome.reply_to:
                    if outcome.encoding is not Encoding.JSON:
                        body, headers = encode_reply(reply, outcome.encoding)
                    await publish(outcome.reply_to, body, headers=headers)
            elif outcome.reply_to:
                await self.publish_reply(outcome.reply_to, reply, outcome.encoding)
            for waiter, encoding in outcome.waiters:
                await self.publish_reply(waiter, {**reply, "duplicate": True}, encoding)
