"""An agent's system history: lifecycle transitions and supervision events, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic_core import from_json

from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.event_records import delivery_of

__all__ = ["read_system_history"]


async def read_system_history(
    js: JetStreamContext,
    agent: str,
    on_record: Callable[[dict[str, Any]], None],
    *,
    follow: bool = False,
) -> int:
    """Pass each record (``{"kind": "lifecycle"|"agent", "time": ..., **payload}``) of
    ``o.sys.*.<agent>`` to ``on_record``; stop at the end unless ``follow``. Returns the count."""
    try:
        info = await js.stream_info(layout.SYSTEM_STREAM)
    except nats.errors.Error as err:
        raise StorageError("the system stream is missing: run `o-bus up` first") from err
    if not follow and info.state.messages == 0:
        return 0
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    count = 0

    async def handle(msg: Msg) -> None:
        nonlocal count
        _, _, pending = delivery_of(msg)
        kind = msg.subject.split(".")[2]
        with contextlib.suppress(ValueError):
            on_record({"kind": kind, **from_json(msg.data)})
            count += 1
        if pending == 0 and not follow and not done.done():
            done.set_result(None)

    sub = await js.subscribe(
        layout.system_records_wildcard(agent),
        stream=layout.SYSTEM_STREAM,
        cb=handle,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        # An agent with no system record yet: nothing is delivered; give up after a moment.
        await asyncio.wait_for(asyncio.shield(done), None if follow else 2.0)
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return count
