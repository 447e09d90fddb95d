"""A started read of an agent's events: an async iterator that is already positioned.

It is positioned when it is created, not on first iteration, so whatever is appended after
``await client.subscribe(...)`` returns is delivered, however late the first ``anext``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Self

from pydantic_core import from_json

from o_bus.client.models import HistoryEvent
from o_bus.errors import OBusError
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog

__all__ = ["EventStream", "history_event"]

_END = object()


def history_event(event: StoredEvent) -> HistoryEvent:
    return HistoryEvent(
        agent=event.agent,
        seq=event.seq,
        stream_seq=event.stream_seq,
        time=event.time,
        type=event.type,
        version=event.version,
        request_id=event.request_id,
        data=from_json(event.data) if event.data else None,
        code_version=event.code_version,
        wal_seq=event.wal_seq,
    )


class EventStream:
    """Events of one agent in order; ``close()`` (or ``async with``) stops the read."""

    def __init__(
        self,
        log: JetStreamEventLog,
        *,
        after_stream_seq: int,
        keep: Callable[[StoredEvent], bool | None],
        follow: bool,
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

        def on_event(event: StoredEvent) -> bool:
            verdict = keep(event)  # True: deliver; False: skip; None: stop before it
            if verdict is None:
                return True
            if verdict:
                self._queue.put_nowait(event)
            return False

        async def read() -> None:
            try:
                await log.replay(on_event, after_stream_seq=after_stream_seq, follow=follow)
            except Exception as err:
                self._queue.put_nowait(err)
                return
            self._queue.put_nowait(_END)

        self._reader = asyncio.create_task(read())
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> HistoryEvent:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return history_event(item)

    async def close(self) -> None:
        """Stop reading (the consumer is deleted)."""
        self._done = True
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, OBusError):
            await self._reader

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
