"""Placement: which hosts run an agent (bucket ``o_placement``, agent -> hosts).

A host is a named supervisor (`o-bus run host --name H`), on this machine or another. An
agent with no placement record runs on the default supervisors (the ones `o-bus up` starts).
Changing a record moves the agent at run time: the old host's supervisor stops its processes,
the new host's starts them (the agent's lease keeps the two from serving at once).

An agent placed on a host with standbys on others (``standby_on``) runs one process on each:
the one that holds the agent's lease is active, the others follow its log and take over when
it dies, so an agent keeps serving when the host running it is killed. The constraint "a
standby never on the same host as the active" holds by construction: every host is named once
(checked when placing) and runs at most one process of the agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from o_bus.errors import ConfigurationError, StorageError
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_bucket
from o_bus.store.watch import watch_bucket

__all__ = ["Placement", "PlacementStore"]


class Placement(BaseModel):
    """One agent's host (where its active runs), its standbys' hosts, who placed it when."""

    model_config = ConfigDict(frozen=True)
    agent: str
    host: str
    standby_on: tuple[str, ...] = ()
    placed_at: str
    by: str = ""

    @model_validator(mode="after")
    def _one_process_per_host(self) -> Placement:
        if duplicated := sorted({h for h in self.hosts if self.hosts.count(h) > 1}):
            raise ValueError(
                f"agent {self.agent!r}: host {', '.join(duplicated)} named twice; a standby "
                "never runs on the same host as the active"
            )
        return self

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host that runs a process of the agent, the active's first."""
        return (self.host, *self.standby_on)


class PlacementStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _kv(self) -> KeyValue:
        try:
            return await ensure_bucket(self.js, layout.PLACEMENT_BUCKET)
        except nats.errors.Error as err:
            raise StorageError("cannot open the placement bucket") from err

    async def place(
        self, agent: str, host: str | None, *, standby_on: tuple[str, ...] = (), by: str = ""
    ) -> Placement | None:
        """Run ``agent`` on ``host`` with standbys on ``standby_on`` (None: on the default
        supervisors). :class:`ConfigurationError` if a host is named twice."""
        layout.validate_agent_name(agent)
        record = None
        if host is not None:
            try:
                record = Placement(
                    agent=agent, host=host, standby_on=standby_on, placed_at=utc_now(), by=by
                )
            except ValidationError as err:
                reason = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ConfigurationError(reason) from None
        elif standby_on:
            raise ConfigurationError("standbys on named hosts need the active on a named host")
        kv = await self._kv()
        try:
            if record is None:
                await kv.delete(agent)
            else:
                await kv.put(agent, record.model_dump_json().encode())
        except nats.errors.Error as err:
            raise StorageError(f"cannot place agent {agent!r}") from err
        return record

    async def get(self, agent: str) -> Placement | None:
        kv = await self._kv()
        try:
            entry = await kv.get(agent)
        except KeyNotFoundError:
            return None
        return Placement.model_validate_json(entry.value or b"") if entry.value else None

    async def host_of(self, agent: str) -> str | None:
        record = await self.get(agent)
        return record.host if record is not None else None

    async def all(self) -> dict[str, Placement]:
        kv = await self._kv()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        found = {}
        for key in keys:
            record = await self.get(key)
            if record is not None:
                found[key] = record
        return found

    async def watch(self) -> AsyncIterator[tuple[str, Placement | None]]:
        """(agent, placement) for current records and every change; None: back to the
        default supervisors."""
        async for agent, record in watch_bucket(self.js, layout.PLACEMENT_BUCKET, Placement):
            yield agent, record
