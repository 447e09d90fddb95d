"""The splitter's view of which agents exist, kept current from the registry bucket."""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext

from o_bus.common.tasks import cancel_and_wait
from o_bus.evolution.routes import CanaryRoute, RouteStore
from o_bus.store import layout
from o_bus.store.registry import AgentRecord, Registry
from o_bus.store.watch import watch_bucket
from o_bus.supervision.records import AgentSupervision

__all__ = ["RouteTable"]

log = logging.getLogger(__name__)


class RouteTable:
    """Agent name -> its record. Updated by a watch on the registry; no restart needed."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.commands: dict[str, frozenset[str]] = {}
        self.failed: dict[str, str] = {}  # agents the supervisor gave up on, with the reason
        self.canaries: dict[str, CanaryRoute] = {}  # agents with a canary version
        self._tasks: list[asyncio.Task[None]] = []
        self._registry: Registry | None = None
        self._refollow: asyncio.Task[None] | None = None
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
        self._registry = registry
        for record in await registry.all():
            self.apply(record)
        self.ready.set()
        self._tasks = [
            asyncio.create_task(self._watch(registry), name="routes-watch"),
            asyncio.create_task(self._watch_supervision(registry.js), name="routes-status"),
            asyncio.create_task(self._watch_routes(RouteStore(registry.js)), name="routes-code"),
        ]

    async def _watch(self, registry: Registry) -> None:
        async for change in registry.watch():
            self.apply(change)

    async def _watch_supervision(self, js: JetStreamContext) -> None:
        bucket = layout.SUPERVISOR_BUCKET
        async for agent, state in watch_bucket(js, bucket, AgentSupervision):
            if state is not None and state.status == "failed":
                self.failed[agent] = state.reason
                log.warning("route: %s failed (%s); refusing its requests", agent, state.reason)
            elif self.failed.pop(agent, None) is not None:
                log.info("route: %s is back", agent)

    async def _watch_routes(self, routes: RouteStore) -> None:
        async for agent, route in routes.watch():
            canary = route.canary if route is not None else None
            if canary is not None and canary.weight > 0:
                self.canaries[agent] = canary
                log.info("route: %s canary %s at %d%%", agent, canary.version, canary.weight)
            elif self.canaries.pop(agent, None) is not None:
                log.info("route: %s canary removed", agent)

    @property
    def watches(self) -> tuple[asyncio.Task[None], ...]:
        """The tasks that follow the buckets now."""
        return tuple(self._tasks)

    def refollow_soon(self, delay: float = 1.0) -> None:
        """Start the bucket watches again shortly (once, however often this is called): a
        watch whose consumer the NATS client failed to recreate would stay silent."""
        if self._registry is None or (self._refollow is not None and not self._refollow.done()):
            return
        self._refollow = asyncio.create_task(self._again(self._registry, delay))

    async def _again(self, registry: Registry, delay: float) -> None:
        await asyncio.sleep(delay)
        log.warning("routes: watching the buckets again after a connection problem")
        await cancel_and_wait(self._tasks)
        try:
            await self.follow(registry)
        except Exception:  # the server is still busy: the next trouble schedules another try
            log.exception("routes: could not watch the buckets again")

    async def close(self) -> None:
        if self._refollow is not None:
            await cancel_and_wait([self._refollow])
        await cancel_and_wait(self._tasks)
