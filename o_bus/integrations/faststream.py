"""FastStream services talk to O agents with typed models: ``pip install 'o-bus[faststream]'``.

::

    broker = NatsBroker("nats://127.0.0.1:4222")
    bus = OBus(broker)

    @bus.on_event("counter", Incremented)           # each new event, decoded to the model
    async def counted(event: Incremented, meta: EventMeta = Depends(event_meta)) -> None: ...

    @broker.subscriber("orders")
    async def order(order: Order) -> None:
        reply = await bus.send("counter", Increment(by=order.quantity))  # CommandReply

Commands go through the broker's own connection (its middlewares and telemetry apply) with
the CloudEvents headers the splitter expects; a timed-out send is sent again with the same
request id, which the WAL applies at most once. To publish commands as a handler's return
value, use ``@broker.publisher(OBus.requests_to("counter"))`` and return ``bus.command(...)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from faststream.nats import JStream, NatsBroker, NatsMessage, NatsResponse
from nats.js.api import DeliverPolicy
from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json, to_json

from o_bus.client.models import CommandReply, QueryReply
from o_bus.errors import RequestTimeoutError
from o_bus.events.model import Command, Event
from o_bus.requests import request_headers
from o_bus.store import layout
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import CE_EVENTVERSION, CE_REQUESTID, CE_SEQUENCE, CE_TYPE

__all__ = ["EventMeta", "OBus", "event_meta"]

F = TypeVar("F", bound=Callable[..., Any])


class EventMeta(BaseModel):
    """Where an event stands in its agent's log, from the message's headers."""

    model_config = ConfigDict(frozen=True)
    seq: int
    type: str
    version: int
    request_id: str | None


def event_meta(message: NatsMessage) -> EventMeta:
    """A FastStream dependency: ``meta: EventMeta = Depends(event_meta)``."""
    headers = message.headers
    return EventMeta(
        seq=int(headers[CE_SEQUENCE]),
        type=headers[CE_TYPE],
        version=int(headers.get(CE_EVENTVERSION, "1")),
        request_id=headers.get(CE_REQUESTID),
    )


class OBus:
    """O's agents seen from a FastStream :class:`NatsBroker`."""

    def __init__(
        self,
        broker: NatsBroker,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        source: str = "o-bus/faststream",
    ) -> None:
        self.broker = broker
        self.timeout = timeout
        self.retries = retries
        self.source = source

    @staticmethod
    def requests_to(agent: str) -> str:
        """The subject that takes ``agent``'s commands (for ``@broker.publisher``)."""
        return layout.request_subject(agent)

    def command(self, command: Command, *, request_id: str | None = None) -> NatsResponse:
        """A typed command as a handler's return value, with its CloudEvents headers."""
        return NatsResponse(
            body=to_json(command.model_dump(mode="json")),
            headers=request_headers(
                command.command_name, request_id or uuid.uuid4().hex, Encoding.JSON, self.source
            ),
        )

    async def send(
        self,
        agent: str,
        command: Command,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> CommandReply:
        """Send a typed command and wait for its reply (an error reply is returned)."""
        request_id = request_id or uuid.uuid4().hex
        response = self.command(command, request_id=request_id)
        wait = self.timeout if timeout is None else timeout
        for attempt in range(1 + self.retries):
            try:
                reply = await self.broker.request(
                    response.body,
                    layout.request_subject(agent),
                    headers=response.headers,
                    timeout=wait,
                )
            except TimeoutError:
                if attempt == self.retries:
                    raise RequestTimeoutError(
                        f"no reply from {agent!r} within {wait}s (request id {request_id})",
                        request_id=request_id,
                    ) from None
                continue
            return CommandReply.model_validate(from_json(reply.body))
        raise AssertionError("unreachable")  # pragma: no cover

    async def query(
        self,
        agent: str,
        name: str,
        params: BaseModel | dict[str, Any] | None = None,
        *,
        min_seq: int = 0,
        timeout: float | None = None,
    ) -> QueryReply:
        """Ask a read-only query (``min_seq``: once the agent applied that event)."""
        if isinstance(params, BaseModel):
            params = params.model_dump(mode="json")
        wait = self.timeout if timeout is None else timeout
        body = {"query": name, "params": params or {}, "min_seq": min_seq, "timeout": wait}
        reply = await self.broker.request(
            to_json(body), layout.query_subject(agent), timeout=wait + 1.0
        )
        return QueryReply.model_validate(from_json(reply.body))

    def on_event(self, agent: str, event_type: type[Event]) -> Callable[[F], F]:
        """Register the decorated handler for ``agent``'s events of ``event_type`` at the
        model's ``event_version``, decoded to the model (its first argument).

        It sees the events appended from when the app starts, in order, through an ordered
        consumer (nothing to acknowledge or clean up; the broker recreates it after a
        reconnect, from where it was)."""
        wanted = (event_type.event_type, str(event_type.event_version))
        subscriber = self.broker.subscriber(
            layout.event_subject(agent),
            stream=JStream(name=layout.events_stream(agent), declare=False),
            deliver_policy=DeliverPolicy.NEW,
            ordered_consumer=True,
        )

        def matches(message: NatsMessage) -> bool:
            headers = message.headers
            return (headers.get(CE_TYPE), headers.get(CE_EVENTVERSION, "1")) == wanted

        async def other_types(body: Any) -> None:
            """Events of other types and versions: passed over (not an error)."""

        def register(handler: F) -> F:
            subscriber(filter=matches)(handler)
            subscriber(other_types)  # registered last: only what no filter took
            return handler

        return register
