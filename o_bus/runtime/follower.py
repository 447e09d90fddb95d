"""A warm standby's view of an agent: state kept current by tailing the event log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.definition import AgentDefinition
from o_bus.replay.rebuild import Rebuilt, rebuild
from o_bus.store.event_log import LogPosition, StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.snapshots import SnapshotStore

__all__ = ["Follower"]

log = logging.getLogger(__name__)


class Follower:
    """Recovers once (snapshot + tail), then applies each new event as it is appended."""

    def __init__(
        self, nc: Client, js: JetStreamContext, name: str, definition: AgentDefinition[Any]
    ) -> None:
        self.log = JetStreamEventLog(nc, js, name)
        self.snapshots = SnapshotStore(js)
        self.definition = definition
        self.current: Rebuilt | None = None
        self._task: asyncio.Task[int] | None = None
        self.failed: BaseException | None = None

    async def start(self) -> None:
        await ensure_agent_stream(self.log.js, self.log.agent)
        self.current = await rebuild(self.definition, self.log, self.snapshots)
        self._task = asyncio.create_task(self._tail(), name=f"follow-{self.log.agent}")

    async def _tail(self) -> int:
        assert self.current is not None
        current = self.current
        decode, apply = self.definition.decode_event, self.definition.apply

        def on_event(event: StoredEvent) -> None:
            current.state = apply(current.state, decode(event.type, event.version, event.data))
            current.position = LogPosition(
                event.seq, event.stream_seq, max(event.wal_seq, current.position.wal_seq)
            )
            current.replayed += 1

        try:
            return await self.log.replay(
                on_event, after_stream_seq=current.position.stream_seq, follow=True
            )
        except Exception as err:  # surfaced at takeover, which then does a full recovery
            log.error("standby of %s stopped following: %s", self.log.agent, err)
            self.failed = err
            raise

    async def stop(self) -> Rebuilt | None:
        """Stop tailing; return the state reached (None if following failed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return None if self.failed is not None else self.current
