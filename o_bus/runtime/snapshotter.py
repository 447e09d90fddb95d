"""Snapshots of a worker's durable state, taken in the background, one at a time."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import StorageError
from o_bus.events.model import State
from o_bus.store.event_records import utc_now
from o_bus.store.snapshots import Snapshot, SnapshotStore

__all__ = ["Snapshotter"]

log = logging.getLogger(__name__)


class Snapshotter:
    def __init__(self, store: SnapshotStore, agent: str) -> None:
        self.store, self.agent = store, agent
        self.seq = 0  # agent sequence of the latest snapshot taken or being taken
        self._task: asyncio.Task[None] | None = None

    def schedule(
        self,
        definition: AgentDefinition[Any],
        state: State,
        seq: int,
        stream_seq: int,
        wal_seq: int,
    ) -> None:
        """Save a snapshot of ``state`` (durable at ``seq``), unless one is being saved."""
        if self._task is not None and not self._task.done():
            return
        snapshot = Snapshot(
            agent=self.agent,
            definition=definition.name,
            seq=seq,
            stream_seq=stream_seq,
            wal_seq=wal_seq,
            code_version=definition.version,
            state_schema_version=definition.state_schema_version,
            taken_at=utc_now(),
            state=state.model_dump(mode="json"),
        )
        self.seq = snapshot.seq
        self._task = asyncio.create_task(self._save(snapshot))

    async def _save(self, snapshot: Snapshot) -> None:
        try:
            await self.store.save(snapshot)
        except StorageError:
            log.exception("snapshot of %s at seq %d failed", self.agent, snapshot.seq)

    async def wait(self) -> None:
        """Until the snapshot being saved (if any) is saved or has failed."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
