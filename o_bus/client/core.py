"""`o_bus.Client`: talk to a running platform from Python (what the `o-bus` CLI uses).

::

    async with Client("nats://127.0.0.1:4222") as bus:
        reply = await bus.send("counter", "increment", {"by": 2})
        async with await bus.subscribe("counter", ["incremented"]) as events:
            async for event in events:
                ...
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Self

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pydantic import BaseModel

from o_bus import requests
from o_bus.agent.catalogue import Catalogue
from o_bus.client.models import (
    AgentState,
    CommandReply,
    FeedbackReply,
    HistoryEvent,
    QueryReply,
)
from o_bus.client.stream import EventStream
from o_bus.common.connect import ConnectOptions, connect
from o_bus.common.urls import resolve_url
from o_bus.errors import ErrorCode, InvalidRequestError, OBusError, RequestTimeoutError
from o_bus.events.model import Command, Event
from o_bus.evolution.feedback.client import send_feedback
from o_bus.evolution.live_code import route_definition
from o_bus.replay.rebuild import rebuild
from o_bus.security.cli_identity import environment_options
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.registry import Registry
from o_bus.store.snapshots import SnapshotStore
from o_bus.wire.codec import Encoding

__all__ = ["Client"]


def _type_names(types: Iterable[str | type[Event]] | None) -> frozenset[str] | None:
    if types is None:
        return None
    return frozenset(t if isinstance(t, str) else t.event_type for t in types)


class Client:
    """An async client of a running platform over one NATS connection.

    ``url`` defaults as in the CLI (``$O_BUS_NATS_URL``, then a local ``o-bus up``, then
    ``nats://127.0.0.1:4222``); ``options`` carry credentials and TLS, by default those of
    the environment or of a local ``o-bus up`` (its operator identity, as the CLI uses). Use
    it as an async context manager, or call :meth:`connect` and :meth:`close`. :meth:`wrap`
    uses a connection someone else owns (a FastStream broker's, for example).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        options: ConnectOptions | None = None,
        name: str = "o-bus-client",
        timeout: float = 5.0,
        retries: int = 2,
        source: str = "o-bus/client",
    ) -> None:
        self.url = resolve_url(url)
        self.options = options or environment_options()
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.source = source
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @classmethod
    def wrap(cls, nc: NatsClient, **kwargs: Any) -> Client:
        """A client over an open connection; :meth:`close` leaves that connection open."""
        client = cls(nc.connected_url.geturl() if nc.connected_url else None, **kwargs)
        client._nc, client._js = nc, nc.jetstream(timeout=client.timeout)
        return client

    async def connect(self) -> Self:
        """Connect (raises ``StorageError`` when the server cannot be reached)."""
        if self._nc is None:
            stack = contextlib.AsyncExitStack()
            self._nc, self._js = await stack.enter_async_context(
                connect(
                    self.url,
                    self.name,
                    timeout=self.timeout,
                    options=self.options,
                    wait_for_server=False,
                )
            )
            self._stack = stack
        return self

    async def close(self) -> None:
        """Drain and close the connection this client opened."""
        stack, self._stack = self._stack, None
        if stack is not None:
            self._nc = self._js = None
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise OBusError("the client is not connected: use `async with Client(...)`")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise OBusError("the client is not connected: use `async with Client(...)`")
        return self._js

    async def send(
        self,
        agent: str,
        command: str | Command,
        data: Any = None,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        msgpack: bool = False,
        traceparent: str | None = None,
    ) -> CommandReply:
        """Send a command (a name and data, or a typed :class:`Command`) and return its reply.

        On a timeout the request is sent again with the same request id (``ce-id``) up to
        ``retries`` times: the WAL recognises the id, so it is applied at most once and a
        late retry gets the original reply (``duplicate`` true). An error reply is returned,
        not raised (see ``raise_for_error``). ``traceparent``: the W3C trace context to carry."""
        if isinstance(command, Command):
            if data is not None:
                raise TypeError("pass data inside the typed command, not beside it")
            name, data = command.command_name, command.model_dump(mode="json")
        else:
            name = command
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        request_id = request_id or uuid.uuid4().hex
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                raw = await requests.send(
                    self.nc,
                    agent,
                    name,
                    data,
                    request_id=request_id,
                    encoding=Encoding.MSGPACK if msgpack else Encoding.JSON,
                    timeout=self.timeout if timeout is None else timeout,
                    source=self.source,
                    traceparent=traceparent,
                )
            except RequestTimeoutError:
                if attempt + 1 == attempts:
                    raise
                continue
            return CommandReply.model_validate(raw)
        raise AssertionError("unreachable")  # pragma: no cover

    async def query(
        self,
        agent: str,
        name: str,
        params: dict[str, Any] | BaseModel | None = None,
        *,
        min_seq: int = 0,
        timeout: float | None = None,
    ) -> QueryReply:
        """Ask a read-only query (not through the WAL); ``min_seq``: once event N is applied."""
        if isinstance(params, BaseModel):
            params = params.model_dump(mode="json")
        raw = await requests.query(
            self.nc,
            agent,
            name,
            params,
            min_seq=min_seq,
            timeout=self.timeout if timeout is None else timeout,
        )
        return QueryReply.model_validate(raw)

    async def feedback(
        self,
        agent: str,
        request_id: str,
        score: float,
        *,
        text: str | None = None,
        by: str | None = None,
        timeout: float | None = None,
    ) -> FeedbackReply:
        """Rate one of the agent's requests, ``score`` in [-1, 1] (below 0: a regression)."""
        raw = await send_feedback(
            self.nc,
            agent,
            request_id,
            score,
            text=text,
            by=by,
            timeout=self.timeout if timeout is None else timeout,
        )
        return FeedbackReply.model_validate(raw)

    async def events(
        self,
        agent: str,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        event_types: Iterable[str | type[Event]] | None = None,
        follow: bool = False,
    ) -> EventStream:
        """The agent's events in order from ``from_seq`` to ``to_seq`` or the end of the log;
        with ``follow``, then every new one as it comes. Iterate it; close it when done."""
        await Registry(self.js).get(agent)  # AgentNotFoundError for an unknown agent
        wanted = _type_names(event_types)

        def keep(event: StoredEvent) -> bool | None:
            if to_seq is not None and event.seq > to_seq:
                return None
            return event.seq >= from_seq and (wanted is None or event.type in wanted)

        log = JetStreamEventLog(self.nc, self.js, agent)
        return EventStream(log, after_stream_seq=0, keep=keep, follow=follow)

    async def history(
        self, agent: str, *, from_seq: int = 1, to_seq: int | None = None
    ) -> list[HistoryEvent]:
        """The agent's events ``from_seq``..``to_seq`` (both counted from 1; default: all)."""
        async with await self.events(agent, from_seq=from_seq, to_seq=to_seq) as events:
            return [event async for event in events]

    async def subscribe(
        self, agent: str, event_types: Iterable[str | type[Event]] | None = None
    ) -> EventStream:
        """Every event the agent appends from now on (of ``event_types``: names or Event
        classes), live. Positioned when this returns::

            async with await bus.subscribe("counter", [Incremented]) as events:
                async for event in events:
                    ...
        """
        await Registry(self.js).get(agent)
        wanted = _type_names(event_types)
        log = JetStreamEventLog(self.nc, self.js, agent)
        end = (await log.last_position()).stream_seq
        return EventStream(
            log,
            after_stream_seq=end,
            keep=lambda event: wanted is None or event.type in wanted,
            follow=True,
        )

    async def state(
        self,
        agent: str,
        *,
        at: int | None = None,
        at_time: str | None = None,
        definitions: Iterable[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> AgentState:
        """The agent's state now, after its event ``at``, or at the ISO-8601 time ``at_time``
        (in the log's format), folded by the code its route names as live. ``definitions``:
        extra definition specs (module:attr or file.py) beside the installed ones."""
        record = await Registry(self.js).get(agent)
        registered = Catalogue.discover(list(definitions)).get(record.definition)
        definition, live = await route_definition(self.js, agent, registered)
        log = JetStreamEventLog(self.nc, self.js, agent)
        if at is not None:
            end = (await log.last_position()).seq
            if at > end:
                raise InvalidRequestError(
                    ErrorCode.MALFORMED_REQUEST,
                    f"--at {at} is past the end of the log of {agent!r} (its last event is {end})",
                    details={"at": at, "last_seq": end},
                )
        rebuilt = await rebuild(
            definition,
            log,
            SnapshotStore(self.js),
            at_seq=at,
            at_time=at_time,
            progress=progress,
        )
        return AgentState(
            agent=agent,
            definition=record.definition,
            code_version=definition.version,
            live=live,
            seq=rebuilt.position.seq,
            state=rebuilt.state.model_dump(mode="json"),
            from_snapshot=rebuilt.snapshot.seq if rebuilt.snapshot else None,
            replayed=rebuilt.replayed,
        )
