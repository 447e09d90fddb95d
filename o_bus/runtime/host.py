"""The agent host: every registered agent whose code it can load, each as an
:class:`~o_bus.runtime.agent_process.AgentProcess` in this process.

An agent process is what the supervisor of `o-bus up` starts, one per OS process: it takes
the agent's lease, fences its log, follows its route (hot reload, canary), runs its tools and
publishes heartbeats. The host runs the same thing for many agents over one connection
(`o-bus run agents`, embedded platforms, the end-to-end tests), starts new ones as they are
registered (for example by ``o-bus fork``), and starts again one that stopped (a storage
failure, a lost lease) with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.common.tasks import cancel_and_wait
from o_bus.config import RuntimeConfig
from o_bus.errors import OBusError
from o_bus.runtime.agent_code import STORE_PATIENCE_TTLS, agent_code_when_the_store_answers
from o_bus.runtime.agent_process import EXIT_OK, AgentProcess
from o_bus.runtime.worker import AgentWorker
from o_bus.store.registry import AgentRecord, Registry

__all__ = ["AgentHost"]

log = logging.getLogger(__name__)

STOP_GRACE: Final = 25.0  # seconds the agents get to stop gracefully (flush, snapshot)
BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 5.0


class AgentHost:
    """Runs agents of the registry in this process (``only``: just these names)."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        catalogue: Catalogue,
        config: RuntimeConfig | None = None,
        only: set[str] | None = None,
        *,
        lease_ttl: float = 2.0,
    ) -> None:
        self.nc, self.js, self.catalogue = nc, js, catalogue
        self.config = config or RuntimeConfig()
        self.only = only
        self.lease_ttl = lease_ttl
        self.processes: dict[str, AgentProcess] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def workers(self) -> dict[str, AgentWorker]:
        """The worker of each agent that is serving now."""
        return {
            name: process.worker
            for name, process in self.processes.items()
            if process.worker is not None and process.role == "active"
        }

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
        if record.name in self._runs or self._stop.is_set():
            return
        if self.only is not None and record.name not in self.only:
            return
        if record.code is None and record.definition not in self.catalogue.names():
            log.warning(
                "agent %s needs definition %r, not installed here", record.name, record.definition
            )
            return
        self._runs[record.name] = asyncio.create_task(
            self._keep_running(record.name), name=f"agent-{record.name}"
        )

    async def _keep_running(self, name: str) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            process: AgentProcess | None = None
            try:
                routes, definition = await agent_code_when_the_store_answers(
                    self.nc, self.js, name, self.catalogue, STORE_PATIENCE_TTLS * self.lease_ttl
                )
                process = AgentProcess(
                    self.nc, self.js, name, definition, self.config,
                    routes=routes, lease_ttl=self.lease_ttl,
                )  # fmt: skip
                self.processes[name] = process
                code = await process.run(self._stop)
                if code == EXIT_OK and self._stop.is_set():
                    return
                log.error("agent %s stopped (exit code %d); again in %.1fs", name, code, backoff)
            except OBusError as err:
                log.error("agent %s could not run: %s; again in %.1fs", name, err.message, backoff)
                if process is not None:
                    await _abandon(process, err.message)
            finally:
                self.processes.pop(name, None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self) -> None:
        """Stop every agent gracefully (each flushes, snapshots and gives its lease back)."""
        self._stop.set()
        if self._watch is not None:
            await cancel_and_wait([self._watch])
        runs = list(self._runs.values())
        if runs:
            _, late = await asyncio.wait(runs, timeout=STOP_GRACE)
            await cancel_and_wait(late)


async def _abandon(process: AgentProcess, why: str) -> None:
    """After a start that failed half-way: stop its worker and give its lease back, so that
    the next attempt need not wait for the lease to expire."""
    if process.worker is not None:
        await process.worker.stop(f"start failed: {why}")
    await process.lease.release()
