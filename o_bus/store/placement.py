"""Placement: which host runs an agent (bucket ``o_placement``, agent -> host).

A host is a named supervisor (`o-bus run host --name H`), on this machine or another. An
agent with no placement record runs on the default supervisors (the ones `o-bus up` starts).
Changing a record moves the agent at run time: the old host's supervisor stops its processes,
the new host's starts them (the agent's lease keeps the two from serving at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from o_bus.errors import StorageError
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_bucket
from o_bus.store.watch import watch_bucket

__all__ = ["Placement", "PlacementStore"]


class Placement(BaseModel):
    """One agent's host, and who placed it there when."""

    model_config = ConfigDict(frozen=True)
    agent: str
    host: str
    placed_at: str
    by: str = ""


class PlacementStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _kv(self) -> KeyValue:
        try:
            return await ensure_bucket(self.js, layout.PLACEMENT_BUCKET)
        except nats.errors.Error as err:
            raise StorageError("cannot open the placement bucket") from err

    async def place(self, agent: str, host: str | None, *, by: str = "") -> None:
        """Run ``agent`` on ``host`` (None: on the default supervisors)."""
        layout.validate_agent_name(agent)
        kv = await self._kv()
        try:
            if host is None:
                await kv.delete(agent)
            else:
                record = Placement(agent=agent, host=host, placed_at=utc_now(), by=by)
                await kv.put(agent, record.model_dump_json().encode())
        except nats.errors.Error as err:
            raise StorageError(f"cannot place agent {agent!r}") from err

    async def host_of(self, agent: str) -> str | None:
        kv = await self._kv()
        try:
            entry = await kv.get(agent)
        except KeyNotFoundError:
            return None
        return Placement.model_validate_json(entry.value or b"").host

    async def all(self) -> dict[str, str]:
        kv = await self._kv()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        found = {}
        for key in keys:
            host = await self.host_of(key)
            if host is not None:
                found[key] = host
        return found

    async def watch(self) -> AsyncIterator[tuple[str, str | None]]:
        """(agent, host) for current records and every change; None: back to the default."""
        async for agent, record in watch_bucket(self.js, layout.PLACEMENT_BUCKET, Placement):
            yield agent, record.host if record is not None else None
