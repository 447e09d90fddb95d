"""The lineage stream ``O_LINEAGE`` (subjects ``o.lineage.<agent>.<search>``): append and read.

Each event carries a ``Nats-Msg-Id`` derived from what it records (the child, the
generation), so an event published twice within the dedup window is stored once; a resumed
search also checks its fold before publishing, so nothing is recorded twice after that.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.errors import StorageError
from o_bus.evolution.search.lineage.events import LineageEvent, event_adapter
from o_bus.store import layout
from o_bus.store.provision import _base, storage_config
from o_bus.wire.headers import NATS_MSG_ID

__all__ = ["LINEAGE_PREFIX", "LINEAGE_STREAM", "LineageStream", "lineage_subject"]

LINEAGE_STREAM = "O_LINEAGE"
LINEAGE_PREFIX = "o.lineage."


def lineage_subject(agent: str, search: str) -> str:
    layout.validate_agent_name(agent)
    return f"{LINEAGE_PREFIX}{agent}.{search}"


def _message_id(event: LineageEvent) -> str:
    parts = [getattr(event, "generation", None), getattr(event, "child", None)]
    return ".".join([event.search, event.kind, *(str(p) for p in parts if p is not None)])


class LineageStream:
    """One agent's searches on the lineage stream."""

    def __init__(self, js: JetStreamContext, agent: str) -> None:
        self.js = js
        self.agent = agent

    async def ensure(self) -> None:
        """Create the stream if it is missing (idempotent)."""
        try:
            await self.js.stream_info(LINEAGE_STREAM)
            return
        except JsNotFoundError:
            pass
        config = replace(
            _base(await storage_config(self.js)),
            name=LINEAGE_STREAM,
            description="O evolution lineage: children, evaluations, migrations, hand-offs",
            subjects=[LINEAGE_PREFIX + ">"],
            duplicate_window=120.0,
            deny_delete=True,
        )
        try:
            await self.js.add_stream(config)
        except nats.errors.Error as err:
            try:
                await self.js.stream_info(LINEAGE_STREAM)
            except nats.errors.Error:
                raise StorageError("cannot create the lineage stream") from err

    async def append(self, event: LineageEvent) -> None:
        data = event_adapter.dump_json(event)
        try:
            await self.js.publish(
                lineage_subject(self.agent, event.search),
                data,
                stream=LINEAGE_STREAM,
                headers={NATS_MSG_ID: _message_id(event)},
            )
        except nats.errors.Error as err:
            raise StorageError(f"cannot record {event.kind} of search {event.search}") from err

    async def read(self, search: str) -> list[LineageEvent]:
        """Every event of ``search``, in the order recorded."""
        return await self._read(lineage_subject(self.agent, search))

    async def latest_search(self) -> str | None:
        """The id of the agent's most recently recorded search, if any."""
        try:
            msg = await self.js.get_msg(
                LINEAGE_STREAM, subject=f"{LINEAGE_PREFIX}{self.agent}.>", direct=True
            )
        except (JsNotFoundError, nats.errors.Error):
            return None
        return msg.subject.rsplit(".", 1)[-1] if msg.subject else None

    async def _read(self, subject: str) -> list[LineageEvent]:
        try:
            info = await self.js.stream_info(LINEAGE_STREAM, subjects_filter=subject)
        except JsNotFoundError:
            return []
        except nats.errors.Error as err:
            raise StorageError("cannot read the lineage stream") from err
        expected = (info.state.subjects or {}).get(subject, 0)
        if not expected:
            return []
        events: list[LineageEvent] = []
        done = asyncio.get_running_loop().create_future()

        async def on_msg(msg: Msg) -> None:
            events.append(event_adapter.validate_json(msg.data))
            if msg.metadata.num_pending == 0 and not done.done():
                done.set_result(None)

        sub = await self.js.subscribe(
            subject, cb=on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            await asyncio.wait_for(done, timeout=30)
        except TimeoutError as err:
            raise StorageError(f"reading the lineage of {subject} timed out") from err
        finally:
            await sub.unsubscribe()
        return events
