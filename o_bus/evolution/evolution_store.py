"""Reading and writing evolution records (KV ``o_evolution``), and their decision events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from o_bus.errors import (
    ConcurrencyError,
    ErrorCode,
    EvolutionNotFoundError,
    InvalidRequestError,
    StorageError,
)
from o_bus.evolution.plan import Evolution, EvolutionDecision
from o_bus.evolution.records import EvolutionDecisionRecord
from o_bus.store import layout
from o_bus.store.watch import watch_bucket

__all__ = ["EvolutionStore"]


class EvolutionStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _kv(self) -> Any:
        try:
            return await self.js.key_value(layout.EVOLUTION_BUCKET)
        except nats.errors.Error as err:
            raise StorageError("evolution bucket is missing: run `o-bus up` first") from err

    async def get(self, agent: str) -> tuple[Evolution, int]:
        kv = await self._kv()
        try:
            entry = await kv.get(agent)
        except KeyNotFoundError:
            raise EvolutionNotFoundError(f"agent {agent!r} has no evolution") from None
        except nats.errors.Error as err:
            raise StorageError(f"cannot read the evolution of {agent!r}") from err
        return Evolution.model_validate_json(entry.value), entry.revision

    async def request(self, evolution: Evolution) -> None:
        """Start an evolution; refused while another one of the agent is active."""
        kv = await self._kv()
        value = evolution.model_dump_json().encode()
        try:
            current, revision = await self.get(evolution.agent)
        except EvolutionNotFoundError:
            current, revision = None, 0
        if current is not None and current.active:
            raise InvalidRequestError(
                ErrorCode.MALFORMED_REQUEST,
                f"agent {evolution.agent!r} is already evolving to {current.version} "
                f"(stage {current.stage}); abort it first",
            )
        try:
            if revision:
                await kv.update(evolution.agent, value, last=revision)
            else:
                await kv.create(evolution.agent, value)
        except KeyWrongLastSequenceError as err:
            raise ConcurrencyError(evolution.agent, revision, "the evolution changed") from err
        except nats.errors.Error as err:
            raise StorageError(f"cannot record the evolution of {evolution.agent!r}") from err

    async def save(self, evolution: Evolution, revision: int) -> int:
        """Compare-and-set; returns the new revision."""
        kv = await self._kv()
        try:
            new_revision: int = await kv.update(
                evolution.agent, evolution.model_dump_json().encode(), last=revision
            )
        except KeyWrongLastSequenceError as err:
            raise ConcurrencyError(evolution.agent, revision, "the evolution changed") from err
        except nats.errors.Error as err:
            raise StorageError(f"cannot record the evolution of {evolution.agent!r}") from err
        return new_revision

    async def record(self, agent: str, version: str, decision: EvolutionDecision) -> None:
        record = EvolutionDecisionRecord(agent=agent, version=version, **decision.model_dump())
        try:
            await self.js.publish(
                layout.evolution_event_subject(agent), record.model_dump_json().encode()
            )
        except nats.errors.Error as err:
            raise StorageError(f"decision for {agent!r} was not recorded") from err

    async def watch(self) -> AsyncIterator[tuple[str, Evolution | None]]:
        async for agent, evolution in watch_bucket(self.js, layout.EVOLUTION_BUCKET, Evolution):
            yield agent, evolution
