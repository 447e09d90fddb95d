"""A FastStream service beside O: it turns orders into counter increments and watches the
counter's events, with the counter's own typed models.

Run the platform (`o-bus up`), then::

    pip install 'o-bus[faststream]'
    faststream run examples.faststream.app:app          # or: python examples/faststream/app.py
    nats pub orders.placed '{"sku": "tea", "quantity": 3}'

Each order sends `increment` (by its quantity) to agent `counter` and prints the reply's
sequence; each `incremented` event of the counter is printed as it is appended.
"""

from __future__ import annotations

import asyncio
import os

from faststream import Depends, FastStream
from faststream.nats import NatsBroker
from pydantic import BaseModel, Field

from o_bus.agents.counter import Increment, Incremented
from o_bus.integrations.faststream import EventMeta, OBus, event_meta

broker = NatsBroker(os.environ.get("O_BUS_NATS_URL", "nats://127.0.0.1:4222"))
bus = OBus(broker)
app = FastStream(broker)

seen: list[tuple[int, Incremented]] = []  # what the event handler saw, for the curious


class Order(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


@broker.subscriber("orders.placed")
async def order_placed(order: Order) -> None:
    """An order increments the counter by its quantity; the order's id could be the
    request id, so a redelivered order is applied once."""
    reply = await bus.send("counter", Increment(by=order.quantity))
    reply.raise_for_error()
    print(f"order {order.sku} x{order.quantity}: counter at event {reply.seq}")


@broker.subscriber("orders.bulk")
@broker.publisher(OBus.requests_to("counter"))
async def bulk_order(order: Order) -> object:
    """The same without waiting for the reply: the returned command is published."""
    return bus.command(Increment(by=order.quantity))


@bus.on_event("counter", Incremented)
async def counted(event: Incremented, meta: EventMeta = Depends(event_meta)) -> None:  # noqa: B008
    seen.append((meta.seq, event))
    print(f"counter event {meta.seq}: +{event.by} (request {meta.request_id})")


if __name__ == "__main__":
    asyncio.run(app.run())
