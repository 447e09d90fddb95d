"""The agent registry: which agent instances exist and which definition each one runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from pydantic import BaseModel, ConfigDict

from o_bus.errors import AgentNotFoundError, ErrorCode, InvalidRequestError, StorageError
from o_bus.store import layout
from o_bus.store.watch import watch_bucket
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["AgentRecord", "Registry"]


class AgentRecord(BaseModel):
    """One registered agent instance."""

    model_config = ConfigDict(frozen=True)
    name: str
    definition: str
    commands: list[str] = []
    created_at: str
    forked_from: dict[str, Any] | None = None
    supervision: SupervisionPolicy = SupervisionPolicy()
    code: str | None = None
    """Digest of the stored code version the agent was registered with (None: the installed
    definition named ``definition``)."""


class Registry:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _kv(self) -> Any:
        try:
            return await self.js.key_value(layout.AGENTS_BUCKET)
        except nats.errors.Error as err:
            raise StorageError("agent registry bucket is missing: run `o-bus up` first") from err

    async def register(self, record: AgentRecord, *, create_only: bool = False) -> None:
        """Add or update a record. With ``create_only`` an existing name is an error."""
        layout.validate_agent_name(record.name)
        kv = await self._kv()
        value = record.model_dump_json().encode()
        try:
            if create_only:
                await kv.create(record.name, value)
            else:
                await kv.put(record.name, value)
        except KeyWrongLastSequenceError as err:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST, f"agent {record.name!r} already exists"
            ) from err
        except nats.errors.Error as err:
            raise StorageError(f"cannot register agent {record.name!r}") from err

    async def remove(self, name: str) -> None:
        """Delete a record (watchers see the name); NotFoundError if there is none."""
        await self.get(name)
        kv = await self._kv()
        try:
            await kv.delete(name)
        except nats.errors.Error as err:
            raise StorageError(f"cannot remove agent {name!r}") from err

    async def get(self, name: str) -> AgentRecord:
        kv = await self._kv()
        try:
            entry = await kv.get(name)
        except KeyNotFoundError:
            raise AgentNotFoundError(f"no agent named {name!r}") from None
        except nats.errors.Error as err:
            raise StorageError(f"cannot read agent {name!r}: {err!r}") from err
        return AgentRecord.model_validate_json(entry.value)

    async def all(self) -> list[AgentRecord]:
        kv = await self._kv()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        except nats.errors.Error as err:
            raise StorageError(f"cannot list the agents: {err!r}") from err
        return [await self.get(key) for key in keys]

    async def watch(self) -> AsyncIterator[AgentRecord | str]:
        """Yield current records, then every change; a deleted agent yields its name."""
        async for key, record in watch_bucket(self.js, layout.AGENTS_BUCKET, AgentRecord):
            yield key if record is None else record
