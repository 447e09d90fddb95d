"""`o_bus.SyncClient`: the same calls as :class:`o_bus.Client`, blocking, for scripts and
notebooks. It runs the async client on an event loop in a thread of its own.

::

    with SyncClient("nats://127.0.0.1:4222") as bus:
        print(bus.send("counter", "increment", {"by": 2}).seq)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator, Iterable
from typing import Any, Self, TypeVar

from o_bus.client.core import Client
from o_bus.client.models import (
    AgentState,
    CommandReply,
    FeedbackReply,
    HistoryEvent,
    QueryReply,
)
from o_bus.client.stream import EventStream
from o_bus.common.connect import ConnectOptions
from o_bus.events.model import Command, Event

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """A blocking :class:`Client`. Arguments as for ``Client``; close it (or use ``with``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        options: ConnectOptions | None = None,
        name: str = "o-bus-client",
        timeout: float = 5.0,
        retries: int = 2,
    ) -> None:
        self.client = Client(url, options=options, name=name, timeout=timeout, retries=retries)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="o-bus-sync-client", daemon=True
        )
        self._thread.start()
        try:
            self._run(self.client.connect())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        """Drain the connection and stop the client's thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        agent: str,
        command: str | Command,
        data: Any = None,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        msgpack: bool = False,
    ) -> CommandReply:
        """See :meth:`Client.send`."""
        return self._run(
            self.client.send(
                agent,
                command,
                data,
                request_id=request_id,
                timeout=timeout,
                retries=retries,
                msgpack=msgpack,
            )
        )

    def query(
        self,
        agent: str,
        name: str,
        params: Any = None,
        *,
        min_seq: int = 0,
        timeout: float | None = None,
    ) -> QueryReply:
        """See :meth:`Client.query`."""
        return self._run(self.client.query(agent, name, params, min_seq=min_seq, timeout=timeout))

    def feedback(
        self,
        agent: str,
        request_id: str,
        score: float,
        *,
        text: str | None = None,
        by: str | None = None,
        timeout: float | None = None,
    ) -> FeedbackReply:
        """See :meth:`Client.feedback`."""
        return self._run(
            self.client.feedback(agent, request_id, score, text=text, by=by, timeout=timeout)
        )

    def history(
        self, agent: str, *, from_seq: int = 1, to_seq: int | None = None
    ) -> list[HistoryEvent]:
        """See :meth:`Client.history`."""
        return self._run(self.client.history(agent, from_seq=from_seq, to_seq=to_seq))

    def state(
        self,
        agent: str,
        *,
        at: int | None = None,
        at_time: str | None = None,
        definitions: Iterable[str] = (),
    ) -> AgentState:
        """See :meth:`Client.state`."""
        return self._run(self.client.state(agent, at=at, at_time=at_time, definitions=definitions))

    def subscribe(
        self, agent: str, event_types: Iterable[str | type[Event]] | None = None
    ) -> Generator[HistoryEvent, None, None]:
        """See :meth:`Client.subscribe` (positioned when this returns): blocks for each
        next event; ``close()`` the iterator to stop."""
        return self._iterate(self._run(self.client.subscribe(agent, event_types)))

    def _iterate(self, events: EventStream) -> Generator[HistoryEvent, None, None]:
        async def step() -> tuple[bool, HistoryEvent | None]:
            try:
                return True, await anext(events)
            except StopAsyncIteration:
                return False, None

        async def finish() -> None:
            await events.close()

        try:
            while True:
                more, event = self._run(step())
                if not more or event is None:
                    return
                yield event
        finally:
            if not self._loop.is_closed():
                self._run(finish())
