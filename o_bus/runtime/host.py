"""The agent host: runs a worker for every registered agent whose definition is installed,
starts new ones as they are registered (for example by ``o-bus fork``), and restarts a worker
that stopped on a storage failure, with backoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.common.tasks import cancel_and_wait
from o_bus.config import RuntimeConfig
from o_bus.errors import OBusError
from o_bus.evolution.live_code import CodeResolver, RouteFollower
from o_bus.runtime.worker import AgentWorker
from o_bus.store.registry import AgentRecord, Registry

__all__ = ["AgentHost"]

log = logging.getLogger(__name__)


class AgentHost:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        catalogue: Catalogue,
        config: RuntimeConfig | None = None,
        only: set[str] | None = None,
    ) -> None:
        self.nc, self.js, self.catalogue = nc, js, catalogue
        self.config = config or RuntimeConfig()
        self.only = only
        self.workers: dict[str, AgentWorker] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        registry = Registry(self.js)
        for record in await registry.all():
            self._ensure(record)
        self._watch = asyncio.create_task(self._follow(registry), name="host-registry-watch")

    async def _follow(self, registry: Registry) -> None:
        async for change in registry.watch():
            if isinstance(change, AgentRecord):
                self._ensure(change)

    def _ensure(self, record: AgentRecord) -> None:
        if record.name in self._supervisors or self._stopping:
            return
        if self.only is not None and record.name not in self.only:
            return
        try:
            definition = self.catalogue.get(record.definition)
        except OBusError:
            log.warning(
                "agent %s needs definition %r, not installed here", record.name, record.definition
            )
            return
        self._supervisors[record.name] = asyncio.create_task(
            self._keep_running(record.name, definition), name=f"agent-{record.name}"
        )

    async def _keep_running(self, name: str, registered: AgentDefinition[Any]) -> None:
        backoff = 0.1
        routes = RouteFollower(self.nc, self.js, name, CodeResolver(self.js, name, registered))
        while not self._stopping:
            tools: Any = None
            worker = AgentWorker(self.nc, self.js, name, registered, self.config)
            try:
                worker.definition = await routes.initial_definition()
                await worker.start()
                self.workers[name] = worker
                tools = await self._start_tools(worker)
                routes.start(worker)
                backoff = 0.1
                reason = await worker.failed
                log.error("agent %s failed: %s; recovering in %.1fs", name, reason, backoff)
                await worker.stop(f"failed: {reason}")
            except asyncio.CancelledError:
                await worker.stop("host shutting down")
                raise
            except OBusError as err:
                log.error(
                    "agent %s could not start: %s; retrying in %.1fs", name, err.message, backoff
                )
                await worker.stop(f"start failed: {err.message}")
            finally:
                if tools is not None:
                    await tools.stop()
                await routes.stop()
                self.workers.pop(name, None)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _start_tools(self, worker: AgentWorker) -> Any:
        """The tool runner of an agent that declares tools (see o_bus.tools), unless
        ``config.run_tools`` is off."""
        if worker.definition.tools is None or not self.config.run_tools:
            return None
        from o_bus.runtime.tool_runner import start_tool_runner

        return await start_tool_runner(worker, self.config)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            await cancel_and_wait([self._watch])
        await cancel_and_wait(self._supervisors.values(), timeout=25.0)  # workers stop gracefully
