"""The splitter's view of which agents exist, kept current from the registry bucket."""

from __future__ import annotations

import asyncio
import logging

from o_bus.store.registry import AgentRecord, Registry

__all__ = ["RouteTable"]

log = logging.getLogger(__name__)


class RouteTable:
    """Agent name -> its record. Updated by a watch on the registry; no restart needed."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.commands: dict[str, frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def apply(self, change: AgentRecord | str) -> None:
        if isinstance(change, str):
            self.agents.pop(change, None)
            self.commands.pop(change, None)
            log.info("route removed: %s", change)
            return
        self.agents[change.name] = change
        self.commands[change.name] = frozenset(change.commands)
        log.info("route: %s -> %s (live)", change.name, change.definition)

    async def follow(self, registry: Registry) -> None:
        for record in await registry.all():
            self.apply(record)
        self.ready.set()
        self._task = asyncio.create_task(self._watch(registry), name="routes-watch")

    async def _watch(self, registry: Registry) -> None:
        async for change in registry.watch():
            self.apply(change)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
