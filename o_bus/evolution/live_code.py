"""Keeping an agent process on the code its route names, and on the route's canary.

The route's ``live`` is a code version digest, or None for the definition the agent was
registered with. A :class:`RouteFollower` watches the agent's route and tells its target
(an agent process or a worker) to switch code, to use or drop a canary, and whether a
candidate is under test (lifecycle ``evolving``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, Protocol

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.definition import AgentDefinition
from o_bus.common.tasks import cancel_and_wait
from o_bus.errors import OBusError, StorageError, UntrustedCodeError
from o_bus.evolution.canary_client import CanaryClient
from o_bus.evolution.routes import Route, RouteRefused, RouteStore
from o_bus.store.event_records import utc_now

if TYPE_CHECKING:
    from o_bus.evolution.code_store import CodeStore

__all__ = ["CodeResolver", "CodeTarget", "RouteFollower", "route_definition", "share_live_code"]

log = logging.getLogger(__name__)


class CodeResolver:
    """The definition for a code version of one agent (None: the registered definition)."""

    def __init__(self, js: JetStreamContext, agent: str, registered: AgentDefinition[Any]) -> None:
        self.js, self.agent, self.registered = js, agent, registered
        self._store: CodeStore | None = None
        self._loaded: dict[str, AgentDefinition[Any]] = {}

    @property
    def store(self) -> CodeStore:
        if self._store is None:
            # Imported on first use: most agent processes run their registered code, and
            # every agent process start (a restart, a takeover) would pay for the import.
            from o_bus.evolution.code_store import CodeStore, default_cache_dir

            self._store = CodeStore(self.js, default_cache_dir())
        return self._store

    async def definition(self, version: str | None) -> AgentDefinition[Any]:
        if version is None:
            return self.registered
        found = self._loaded.get(version)
        if found is None:
            found = await self.store.load(self.agent, version)
            self._loaded[version] = found
        return found


async def route_definition(
    js: JetStreamContext, agent: str, registered: AgentDefinition[Any]
) -> tuple[AgentDefinition[Any], str | None]:
    """The code the agent's route names as live (``registered`` when it names none), and
    that version: whatever shows or rebuilds an agent's state must fold with the code that
    wrote it, not with what happens to be installed."""
    route, _ = await RouteStore(js).get(agent)
    return await CodeResolver(js, agent, registered).definition(route.live), route.live


async def share_live_code(js: JetStreamContext, source: str, into: str, at_seq: int) -> None:
    """Make ``into`` (a fork of ``source``) run the code version ``source``'s route names."""
    from o_bus.evolution.code_store import CodeStore, default_cache_dir

    routes = RouteStore(js)
    live = (await routes.get(source))[0].live
    if live is None:
        return
    why = f"forked from {source} at seq {at_seq}: runs the code {source} runs"
    await CodeStore(js, default_cache_dir()).share(source, live, into, by="fork", note=why)
    await routes.update(into, lambda r: r.model_copy(update={"live": live}), by="fork", reason=why)


class CodeTarget(Protocol):
    async def switch_code(self, definition: AgentDefinition[Any], reason: str) -> None: ...

    async def set_evolving(self, evolving: bool, reason: str) -> None: ...

    def set_canary(self, canary: CanaryClient | None) -> None: ...


class RouteFollower:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        resolver: CodeResolver,
        *,
        canary_timeout: float = 0.25,
    ) -> None:
        self.nc, self.agent, self.resolver = nc, agent, resolver
        self.routes = RouteStore(js)
        self.canary_timeout = canary_timeout
        self.live_version: str | None = None
        self._canary: tuple[str, str | None] | None = None  # (canary version, live version)
        self._task: asyncio.Task[None] | None = None

    async def initial_definition(self) -> AgentDefinition[Any]:
        """The definition to start with: the route's live version, or the registered one
        when the route names none or a version no trusted key signed (recorded)."""
        route, _ = await self.routes.get(self.agent)
        try:
            found = await self.resolver.definition(route.live)
        except UntrustedCodeError as err:
            await self.refuse(route, route.live, err)
            return self.resolver.registered
        self.live_version = route.live
        return found

    async def refuse(self, route: Route, version: str | None, err: UntrustedCodeError) -> None:
        """Record that this process does not follow ``route`` because of ``version``."""
        log.error("agent %s: route refused: %s", self.agent, err.message)
        refusal = RouteRefused(
            agent=self.agent,
            route=route,
            version=version,
            reason=err.message,
            by=f"agent {self.agent} pid {os.getpid()}",
            at=utc_now(),
        )
        try:
            await self.routes.record_refusal(refusal)
        except StorageError as storage:
            log.error("agent %s: %s", self.agent, storage.message)

    def start(self, target: CodeTarget) -> None:
        self._task = asyncio.create_task(self._follow(target), name=f"route-{self.agent}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _follow(self, target: CodeTarget) -> None:
        async for agent, route in self.routes.watch():
            if agent != self.agent:
                continue
            try:
                await self.apply(route or Route(agent=agent), target)
            except OBusError as err:
                log.error("agent %s: cannot apply its route: %s", agent, err.message)

    async def apply(self, route: Route, target: CodeTarget) -> None:
        version = route.live
        try:
            live = await self.resolver.definition(version)
            if route.canary is not None:  # checked, never imported here: it runs sandboxed
                version = route.canary.version
                (await self.resolver.store.get(self.agent, version)).verify()
        except UntrustedCodeError as err:
            await self.refuse(route, version, err)
            return  # keep running the code and the canary it runs now
        if route.live != self.live_version:
            previous = self.live_version
            await target.switch_code(
                live, f"route switched live code to {route.live or 'registered'}"
            )
            self.live_version = route.live
            log.info("agent %s: live code %s -> %s", self.agent, previous, route.live)
        canary = route.canary
        key = (canary.version, route.live) if canary is not None and canary.weight > 0 else None
        if key != self._canary:
            self._canary = key
            if canary is None or key is None:
                target.set_canary(None)
            else:
                target.set_canary(
                    CanaryClient(self.nc, self.agent, canary.version, live, self.canary_timeout)
                )
        reason = route.reason or ("candidate under test" if route.under_test else "no candidate")
        await target.set_evolving(route.under_test, reason)
