"""Answering a request re-sent with an id the WAL already holds.

The splitter recognises the id (JetStream deduplication) and asks the agent on
``o.ctl.<agent>.dup``. The answer is the original outcome, marked ``duplicate``: from the batch
still being written, once the original is processed if it is still waiting in the WAL, from
the reply cache, or else looked up in the log in the background (once per id, however many
re-sends arrive meanwhile).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from nats.aio.msg import Msg
from pydantic_core import from_json

from o_bus.errors import OBusError
from o_bus.replay.reply_lookup import rebuild_reply
from o_bus.runtime.group_commit import Outcome
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.event_log import EventLog
from o_bus.wire.codec import Encoding
from o_bus.wire.reply import error_reply_from
from o_bus.wire.wal_record import DuplicateQuery

__all__ = ["DuplicateAnswers", "Waiter"]

Waiter = tuple[str, Encoding]  # (reply subject, encoding)


class _Worker(Protocol):
    name: str
    dead_letters: DeadLetters
    processed_wal: int

    @property
    def committed_seq(self) -> int: ...

    @property
    def log(self) -> EventLog: ...

    def pending(self, request_id: str) -> Outcome | None: ...

    def cached_reply(self, request_id: str) -> bytes | None: ...

    async def publish_reply(
        self, subject: str, reply: dict[str, Any], encoding: Encoding
    ) -> None: ...


class DuplicateAnswers:
    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.early_waiters: dict[str, list[Waiter]] = {}  # re-sent before the original ran
        self._lookups: dict[str, list[Waiter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def waiters_for(self, request_id: str) -> list[Waiter]:
        """Re-senders waiting for ``request_id``, which is being staged now."""
        return self.early_waiters.pop(request_id, []) if self.early_waiters else []

    async def on_request(self, msg: Msg) -> None:
        query = DuplicateQuery.from_headers(msg.headers)
        request_id, wal_seq = query.request_id, query.wal_seq
        reply_to, worker = msg.reply, self.worker
        if not reply_to:
            return
        waiter = (reply_to, query.reply_encoding)
        pending = worker.pending(request_id)
        if pending is not None:
            pending.waiters.append(waiter)
            return
        if wal_seq > worker.processed_wal:
            self.early_waiters.setdefault(request_id, []).append(waiter)
            return
        cached = worker.cached_reply(request_id)
        if cached is not None:
            await worker.publish_reply(
                reply_to, {**from_json(cached), "duplicate": True}, waiter[1]
            )
            return
        waiting = self._lookups.get(request_id)
        if waiting is not None:
            waiting.append(waiter)
            return
        self._lookups[request_id] = [waiter]
        task = asyncio.create_task(self._answer_from_log(request_id, wal_seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_from_log(self, request_id: str, wal_seq: int) -> None:
        worker = self.worker
        try:
            reply = await rebuild_reply(
                worker.log, worker.dead_letters, request_id, wal_seq, worker.committed_seq
            )
        except OBusError as err:
            reply = error_reply_from(worker.name, request_id, err)
        for reply_to, encoding in self._lookups.pop(request_id, []):
            await worker.publish_reply(reply_to, reply, encoding)
