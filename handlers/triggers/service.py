"""The trigger service (``o-bus run triggers``).

Only the instance holding the ``_triggers`` lease acts. Every ``tick`` it reads each registered
agent's triggers (from the code its route names), its trigger log and the recorded figures; the
first trigger that is due is recorded as ``fired`` with its reason, and a search is started
through :func:`o_bus.evolution.triggers.launch.start_search` within the agent's budget. One
search per agent at a time; a paused agent's triggers are not judged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import time
import uuid
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.improvement import SearchBudget
from o_bus.common.tasks import cancel_and_wait
from o_bus.errors import OBusError, StorageError
from o_bus.evolution.live_code import CodeResolver
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.search.starting import definition_file
from o_bus.evolution.triggers.evaluate import due
from o_bus.evolution.triggers.launch import Launcher, SearchOutcome, SearchRequest, start_search
from o_bus.evolution.triggers.records import TriggerLog, TriggerRecord, TriggerStatus
from o_bus.store.event_records import utc_now
from o_bus.store.lease import Lease, LeaseHolder, LeaseStore
from o_bus.store.registry import Registry

__all__ = ["TriggerService"]

log = logging.getLogger(__name__)
LEADER_KEY = "_triggers"


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(r) for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class TriggerService:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        url: str,
        *,
        catalogue: Catalogue,
        launcher: Launcher = start_search,
        default_budget: SearchBudget | None = None,
        tick: float = 2.0,
        lease_ttl: float = 2.0,
    ) -> None:
        self.nc, self.js, self.url = nc, js, url
        self.catalogue, self.launcher = catalogue, launcher
        self.default_budget = default_budget or SearchBudget()
        self.tick, self.lease_ttl = tick, lease_ttl
        self.log = TriggerLog(js)
        self.leases = LeaseStore(js)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.searches: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()  # search ids this instance started
        self._resolvers: dict[str, CodeResolver] = {}
        # when this leader began watching each agent: a schedule that never fired counts from it
        self.watching_since: dict[str, float] = {}
        self._lease: Lease | None = None
        self._main: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._main = asyncio.create_task(self._lead(), name="triggers")

    async def stop(self) -> None:
        if self._main is not None:
            await cancel_and_wait([self._main])
        await cancel_and_wait(list(self.searches.values()), timeout=15.0)
        self.searches.clear()
        if self._lease is not None:
            lease, self._lease = self._lease, None
            try:
                await self.leases.revoke(lease)
            except StorageError as err:
                log.warning("triggers %s: could not release its lease: %s", self.identity, err)

    # -- leadership ------------------------------------------------------------------------

    async def _lead(self) -> None:
        while True:
            holder = LeaseHolder(holder=self.identity, pid=os.getpid(), acquired_at=utc_now())
            while self._lease is None:
                self._lease = await self.leases.acquire(LEADER_KEY, holder)
                if self._lease is None:
                    await asyncio.sleep(self.lease_ttl / 4)
            log.info("trigger service %s is the leader", self.identity)
            rounds = asyncio.create_task(self._rounds(), name="trigger-rounds")
            try:
                while await self._renew_later():
                    pass
            finally:
                await cancel_and_wait([rounds, *self.searches.values()], timeout=15.0)
                self.searches.clear()
            log.error("trigger service %s lost its leadership; standing down", self.identity)
            self._lease = None

    async def _renew_later(self) -> bool:
        await asyncio.sleep(self.lease_ttl / 4)
        assert self._lease is not None
        return await self.leases.renew(self._lease)

    async def _rounds(self) -> None:
        while True:
            try:
                await self.round()
            except OBusError as err:
                log.warning("trigger round failed: %s", err)
            await asyncio.sleep(self.tick)

    # -- one round -------------------------------------------------------------------------

    async def round(self) -> None:
        """Judge every registered agent's triggers once."""
        for record in await Registry(self.js).all():
            if record.definition not in self.catalogue.names():
                continue  # its code is not installed here, so neither are its triggers
            try:
                definition = await self._definition(record.name, record.definition)
                if definition.triggers:
                    await self._judge(record.name, definition)
            except Exception:  # one agent's bad code or data must not stop the others
                log.exception("triggers of %r could not be judged", record.name)

    async def _definition(self, agent: str, definition_name: str) -> AgentDefinition[Any]:
        resolver = self._resolvers.get(agent)
        if resolver is None or resolver.registered.name != definition_name:
            resolver = CodeResolver(self.js, agent, self.catalogue.get(definition_name))
            self._resolvers[agent] = resolver
        route, _ = await RouteStore(self.js).get(agent)
        return await resolver.definition(route.live)

    async def _judge(self, agent: str, definition: AgentDefinition[Any]) -> None:
        status = await self.log.status(agent)
        running = self.searches.get(agent)
        if status.running is not None and (running is None or running.done()):
            if status.running.search_id in self._started:
                # Ours just ended: its record shows on the next round; if it still does not,
                # the record was lost and the search is closed as abandoned then.
                self._started.discard(status.running.search_id)
                return
            await self._abandon(agent, status)
            return
        if status.paused or (running is not None and not running.done()):
            return
        now = time.time()
        since = self.watching_since.setdefault(agent, now)
        firing = await due(self.nc, self.js, definition, agent, status, now=now, since=since)
        if firing is None:
            return
        budget = definition.search_budget or self.default_budget
        await self._record(
            "fired",
            agent,
            reason=firing.reason,
            trigger=firing.trigger,
            feedback_seq=firing.feedback_seq,
            budget=budget,
        )
        file = definition_file(definition)
        request = SearchRequest(
            agent,
            uuid.uuid4().hex,
            firing.reason,
            budget,
            self.url,
            source_file=str(file) if file is not None else None,
        )
        self._started.add(request.search_id)
        await self._record(
            "search_started",
            agent,
            reason=firing.reason,
            trigger=firing.trigger,
            search_id=request.search_id,
            budget=budget,
        )
        self.searches[agent] = asyncio.create_task(self._search(request), name=f"search-{agent}")

    async def _search(self, request: SearchRequest) -> None:
        began_cpu, began = _cpu_seconds(), time.monotonic()
        try:
            outcome = await asyncio.wait_for(
                self.launcher(request), timeout=request.budget.wall_seconds
            )
        except TimeoutError:
            outcome = SearchOutcome(
                "timed_out", {"reason": f"wall-time budget {request.budget.wall_seconds:g} s"}
            )
        except Exception as err:
            log.exception("search %s of %r failed", request.search_id, request.agent)
            outcome = SearchOutcome("failed", {"reason": f"{type(err).__name__}: {err}"[:500]})
        spent = {
            "wall_seconds": round(time.monotonic() - began, 3),
            "cpu_seconds": round(_cpu_seconds() - began_cpu, 3),
        }
        await self._record(
            "search_finished",
            request.agent,
            reason=f"search {outcome.status}",
            search_id=request.search_id,
            outcome={"status": outcome.status, **outcome.detail, "spent": spent},
        )

    async def _abandon(self, agent: str, status: TriggerStatus) -> None:
        assert status.running is not None
        await self._record(
            "search_finished",
            agent,
            reason="search abandoned: the trigger service that started it is gone",
            search_id=status.running.search_id,
            outcome={"status": "abandoned", "started_by": status.running.by},
        )

    async def _record(self, kind: Any, agent: str, **fields: Any) -> None:
        now = time.time()
        record = TriggerRecord(
            kind=kind, agent=agent, at=utc_now(), at_epoch=now, by=self.identity, **fields
        )
        await self.log.append(record)
        log.info("trigger %s for %r: %s", kind, agent, record.reason)
