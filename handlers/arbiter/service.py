"""The evolution arbiter service (``o-bus run arbiter``).

Only the arbiter holding the ``_arbiter`` lease acts. It watches ``o_evolution`` and runs
every active evolution (see :mod:`.run`); a new leader resumes them where the record says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.common.tasks import cancel_and_wait
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution
from o_bus.store.event_records import utc_now
from o_bus.store.lease import HeldLease, LeaseHolder, LeaseStore

from .run import EvolutionRun

__all__ = ["Arbiter"]

log = logging.getLogger(__name__)
LEADER_KEY = "_arbiter"


class Arbiter:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        url: str,
        *,
        agent_args: Sequence[str] = (),
        lease_ttl: float = 2.0,
        tick: float = 0.25,
    ) -> None:
        self.nc, self.js, self.url = nc, js, url
        self.agent_args, self.lease_ttl, self.tick = list(agent_args), lease_ttl, tick
        self.store = EvolutionStore(js)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.leadership = HeldLease(
            LeaseStore(js), LEADER_KEY, lease_ttl, f"arbiter {self.identity}"
        )
        self.runs: dict[str, asyncio.Task[None]] = {}
        self._aborts: dict[str, str] = {}  # operators' abort requests, seen by the watch
        self._main: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._main = asyncio.create_task(self._lead(), name="arbiter")

    async def stop(self) -> None:
        if self._main is not None:
            await cancel_and_wait([self._main])
        await cancel_and_wait(list(self.runs.values()), timeout=15.0)
        self.runs.clear()
        await self.leadership.release()

    async def _lead(self) -> None:
        while True:
            holder = LeaseHolder(holder=self.identity, pid=os.getpid(), acquired_at=utc_now())
            await self.leadership.acquire(holder)
            log.info("arbiter %s is the leader", self.identity)
            watcher = asyncio.create_task(self._watch(), name="arbiter-watch")
            try:
                await self.leadership.keep()
            finally:
                await cancel_and_wait([watcher, *self.runs.values()], timeout=15.0)
                self.runs.clear()
            log.error("arbiter %s lost its leadership; standing down", self.identity)

    async def _watch(self) -> None:
        async for agent, evolution in self.store.watch():
            if evolution is not None and evolution.active:
                if evolution.abort_requested is not None:
                    self._aborts[agent] = evolution.abort_requested
                self._ensure_run(agent, evolution)
            else:
                self._aborts.pop(agent, None)

    def _ensure_run(self, agent: str, evolution: Evolution) -> None:
        task = self.runs.get(agent)
        if task is not None and not task.done():
            return
        self.runs[agent] = asyncio.create_task(self._run(agent), name=f"evolve-{agent}")

    async def _run(self, agent: str) -> None:
        evolution, revision = await self.store.get(agent)
        if not evolution.active:
            return
        run = EvolutionRun(
            self.nc,
            self.js,
            self.url,
            evolution,
            revision,
            agent_args=self.agent_args,
            tick=self.tick,
            abort_reason=lambda: self._aborts.get(agent),
        )
        await run.run()
