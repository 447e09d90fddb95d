"""One agent in its own OS process, as the supervisor runs it: active or warm standby.

Whoever holds the agent's lease is active: it fences the log, serves the WAL and renews the
lease. A standby tails the event log so its state stays current, and takes the lease when the
supervisor says the active died or hung (or when the lease expires). An active that loses its
lease, or finds the log fenced, stops at once and exits with ``EXIT_FENCED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Final, Literal

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.nuid import NUID
from pydantic_core import from_json

from o_bus.agent.definition import AgentDefinition
from o_bus.config import RuntimeConfig
from o_bus.errors import ConcurrencyError, StorageError
from o_bus.evolution.canary_client import CanaryClient
from o_bus.evolution.live_code import RouteFollower
from o_bus.runtime.follower import Follower
from o_bus.runtime.heartbeat import Heartbeat, HeartbeatPublisher, current_rss_bytes
from o_bus.runtime.metrics import RequestMetrics
from o_bus.runtime.progress import ProgressPublisher
from o_bus.runtime.worker import AgentWorker
from o_bus.store import layout
from o_bus.store.event_records import utc_now
from o_bus.store.lease import HeldLease, Lease, LeaseHolder, LeaseStore
from o_bus.supervision.records import host_label

__all__ = ["EXIT_FAILED", "EXIT_FENCED", "EXIT_OK", "AgentProcess"]

log = logging.getLogger(__name__)
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_FENCED: Final = 3


class AgentProcess:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        name: str,
        definition: AgentDefinition[Any],
        config: RuntimeConfig | None = None,
        *,
        standby: bool = False,
        lease_ttl: float = 2.0,
        heartbeat_interval: float = 0.1,
        routes: RouteFollower | None = None,
    ) -> None:
        self.nc, self.js, self.name, self.definition = nc, js, name, definition
        self.config = config or RuntimeConfig()
        self.standby = standby
        self.leases = LeaseStore(js)
        self.lease_ttl = lease_ttl
        self.lease = HeldLease(self.leases, name, lease_ttl, f"agent {name}")
        self.holder = LeaseHolder(
            holder=f"{host_label()}:{os.getpid()}:{NUID().next().decode()[-8:]}",
            pid=os.getpid(),
            role="standby" if standby else "active",
            acquired_at="",
        )
        self.role: Literal["active", "standby", "starting"] = "starting"
        self.worker: AgentWorker | None = None
        self.follower: Follower | None = None
        self.started_at = time.time()
        self._takeover = asyncio.Event()
        self._takeover_from: str | None = None
        self.heartbeats = HeartbeatPublisher(nc, name, self.heartbeat, heartbeat_interval)
        self.progress = ProgressPublisher(nc, name, self._processed_wal)
        self.routes = routes
        self.canary: CanaryClient | None = None
        self.evolving: tuple[bool, str] = (False, "")

    # -- following the route (code version, canary, evolving) --------------------------------

    async def switch_code(self, definition: AgentDefinition[Any], reason: str) -> None:
        self.definition = definition
        if self.worker is not None:
            await self.worker.switch_code(definition, reason)
        elif self.follower is not None:  # a standby follows the log with the new code
            old, self.follower = self.follower, Follower(self.nc, self.js, self.name, definition)
            await old.stop()
            await self.follower.start()

    def set_canary(self, canary: CanaryClient | None) -> None:
        self.canary = canary
        if self.worker is not None:
            self.worker.set_canary(canary)

    async def set_evolving(self, evolving: bool, reason: str) -> None:
        self.evolving = (evolving, reason)
        if self.worker is not None:
            await self.worker.set_evolving(evolving, reason)

    # -- what we tell the world --------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        worker, follower = self.worker, self.follower
        metrics = worker.metrics if worker else RequestMetrics()
        if worker is not None:
            seq, wal, lifecycle, backlog = (
                worker.committed_seq,
                worker.committed_wal,
                worker.lifecycle.value,
                worker.wal_backlog,
            )
        elif follower is not None and follower.current is not None:
            position = follower.current.position
            seq, wal, lifecycle, backlog = position.seq, position.wal_seq, "standby", 0
        else:
            seq, wal, lifecycle, backlog = 0, 0, "initializing", 0
        return Heartbeat(
            agent=self.name,
            definition=self.definition.name,
            pid=self.holder.pid,
            holder=self.holder.holder,
            role=self._reported_role(),
            lifecycle=lifecycle,
            code_version=self.definition.version,
            started_at=self.started_at,
            sent_at=time.time(),
            seq=seq,
            wal_seq=wal,
            wal_backlog=backlog,
            rss_bytes=current_rss_bytes(),
            requests=metrics.requests,
            errors=metrics.errors,
            latency_sum_ms=metrics.latency_sum_ms,
            latency_buckets=list(metrics.buckets),
        )

    def _processed_wal(self) -> int | None:
        worker = self.worker
        if worker is None or self._reported_role() != "active":
            return None
        return worker.committed_wal

    def _reported_role(self) -> Literal["active", "standby", "starting"]:
        # An active that has not renewed its lease for a while (it was paused, say) may have
        # been replaced: it does not claim to be active until it knows it still is.
        if self.role == "active" and time.monotonic() - self.lease.renewed_at > self.lease_ttl / 2:
            return "starting"
        return self.role

    async def _on_takeover(self, msg: Msg) -> None:
        """The supervisor says the active (``holder``) is dead or hung."""
        try:
            request = from_json(msg.data)
        except ValueError:
            return
        if self.role == "active":
            return
        self._takeover_from = str(request.get("holder") or "")
        self._takeover.set()

    # -- the process -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set or the lease is lost; return the process exit code."""
        self.heartbeats.start()
        self.progress.start()
        if self.routes is not None:
            self.routes.start(self)
        takeover_sub = await self.nc.subscribe(
            layout.control_subject(self.name, "takeover"), cb=self._on_takeover
        )
        try:
            lease = None if self.standby else await self._acquire()
            resume = None
            if lease is None:
                self.role = "standby"
                self.follower = Follower(self.nc, self.js, self.name, self.definition)
                await self.follower.start()
                log.info("agent %s: standby, following the log", self.name)
                lease = await self._wait_for_lease(stop)
                resume = await self.follower.stop()
                self.follower = None
                if lease is None:
                    return EXIT_OK
            return await self._serve(resume, stop)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await takeover_sub.unsubscribe()
            if self.routes is not None:
                await self.routes.stop()
            await self.heartbeats.stop()
            await self.progress.stop()

    async def _acquire(self) -> Lease | None:
        holder = self.holder.model_copy(update={"acquired_at": utc_now(), "role": "active"})
        lease = await self.lease.try_acquire(holder)
        if lease is not None:
            self.holder = holder
        return lease

    async def _wait_for_lease(self, stop: asyncio.Event) -> Lease | None:
        # Give a process started as active the first chance at the lease.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._takeover.wait(), self.lease_ttl / 4)
        while not stop.is_set():
            if self._takeover.is_set():
                current = await self.leases.current(self.name)
                if current is not None and current.holder.holder == self._takeover_from:
                    await self.leases.revoke(current)
                self._takeover.clear()
            lease = await self._acquire()
            if lease is not None:
                return lease
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._takeover.wait(), self.lease_ttl / 4)
        return None

    async def _serve(self, resume: Any, stop: asyncio.Event) -> int:
        worker = AgentWorker(self.nc, self.js, self.name, self.definition, self.config)
        self.worker = worker
        try:
            await worker.start(resume=resume, fence_as=self.holder.holder)
        except ConcurrencyError:
            log.warning("agent %s: the log moved while taking over; exiting to retry", self.name)
            await self.lease.release()
            return EXIT_FENCED
        except (StorageError, nats.errors.Error) as err:
            # A store that cannot answer yet (a cluster electing a leader): the supervisor
            # restarts this process within its restart rules.
            log.warning("agent %s: cannot start serving: %s; exiting to retry", self.name, err)
            await worker.stop("could not start")
            await self.lease.release()
            return EXIT_FAILED
        worker.set_canary(self.canary)
        await worker.set_evolving(*self.evolving)
        self.role = "active"
        self.lease.renewed_at = time.monotonic()  # the worker's start may have taken a while
        await self.heartbeats.beat()
        tools = None
        if self.definition.tools is not None and self.config.run_tools:
            from o_bus.runtime.tool_runner import start_tool_runner

            tools = await start_tool_runner(worker, self.config)
        log.info("agent %s: active (%s)", self.name, self.holder.holder)
        keeper = asyncio.create_task(self.lease.keep())
        stopping = asyncio.create_task(stop.wait())
        waiters: list[asyncio.Future[Any]] = [keeper, stopping, worker.failed]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        keeper.cancel()
        stopping.cancel()
        if tools is not None:
            await tools.stop()
        if worker.failed.done():
            reason = worker.failed.result()
            await worker.stop(f"failed: {reason}")
            if isinstance(reason, ConcurrencyError):
                log.warning("agent %s: fenced by a newer writer; stepping down", self.name)
                return EXIT_FENCED
            await self.lease.release()
            return EXIT_FAILED
        if keeper in done:
            log.warning("agent %s: lease lost; stepping down", self.name)
            await worker.stop("lease lost")
            return EXIT_FENCED
        await worker.stop("shutdown")
        await self.lease.release()
        return EXIT_OK
