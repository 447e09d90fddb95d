"""A candidate process: fork, shadow, serve canary decisions, publish stats; until stopped.

Started by the evolution arbiter inside the sandbox (``o-bus run candidate AGENT VERSION``).
Exits 0 when stopped, 1 when the candidate proved unusable (the reason is in its last stats
message and on stderr), and is killed from outside when it stops heartbeating. It stops by
itself when the arbiter that started it is gone or the bus has been unreachable for 30 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Final

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.definition import AgentDefinition
from o_bus.common.periodic import PeriodicPublisher
from o_bus.common.stopping import finish_within, stop_when_unreachable
from o_bus.common.tasks import cancel_and_wait
from o_bus.evolution.live_code import CodeResolver
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.sandbox import current_report
from o_bus.store import layout

from .decider import CanaryDecider
from .shadow import ShadowCounters, ShadowRunner
from .stats import CandidateStats

__all__ = ["CandidateProcess"]

log = logging.getLogger(__name__)
UNREACHABLE_LIMIT: Final = 30.0  # seconds without the bus: it can neither read nor report
STOP_GRACE: Final = 5.0  # seconds to finish cleanly once asked to stop


class CandidateProcess:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        version: str,
        registered: AgentDefinition[Any],
        *,
        stats_interval: float = 0.2,
    ) -> None:
        self.nc, self.js, self.agent, self.version = nc, js, agent, version
        self.resolver = CodeResolver(js, agent, registered)
        self.stats_interval = stats_interval
        self.started_at = time.time()
        self.phase = "forking"
        self.code_version = "?"
        self.shadow: ShadowRunner | None = None
        self.decider: CanaryDecider | None = None
        self.fatal: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.stats = PeriodicPublisher(
            nc, layout.candidate_subject(agent, version, "stats"), self.snapshot, stats_interval
        )

    def _on_fatal(self, reason: str) -> None:
        if not self.fatal.done():
            self.fatal.set_result(reason)

    def snapshot(self) -> CandidateStats:
        shadow, decider = self.shadow, self.decider
        counters = shadow.counters if shadow is not None else ShadowCounters()
        report = current_report()
        n = counters.fitness_n
        failure = (
            (decider.last_failure if decider else None)
            or counters.last_failure
            or (self.fatal.result() if self.fatal.done() else None)
        )
        return CandidateStats(
            agent=self.agent,
            version=self.version,
            code_version=self.code_version,
            pid=os.getpid(),
            phase=self.phase,
            sandbox=report.summary() if report else "none: not started in the sandbox",
            started_at=self.started_at,
            sent_at=time.time(),
            compared=counters.compared,
            differing=counters.differing,
            candidate_failures=counters.candidate_failures,
            live_failures=counters.live_failures,
            candidate_p99_ms=counters.candidate_latency.percentile(0.99),
            live_p99_ms=counters.live_latency.percentile(0.99),
            fitness_n=n,
            candidate_fitness=counters.candidate_fitness_sum / n if n else None,
            live_fitness=counters.live_fitness_sum / n if n else None,
            fitness_gain_sq_sum=counters.fitness_gain_sq_sum,
            canary_decided=decider.decided if decider else 0,
            canary_failures=decider.failures if decider else 0,
            canary_p99_ms=decider.latency.percentile(0.99) if decider else None,
            lag=counters.lag,
            shed=counters.shed,
            skipped=counters.skipped,
            reforks=counters.reforks,
            unread=counters.unread,
            rests=counters.rests,
            rested_seconds=round(counters.rested_seconds, 3),
            last_failure=failure,
            fork_seq=shadow.fork_seq if shadow else 0,
            seq=shadow.seq if shadow else 0,
        )

    async def run(self, stop: asyncio.Event) -> int:
        """Shadow and decide until ``stop`` (or the code fails): 0, or 1 when it failed. It
        also stops when the arbiter that started it is gone or the bus has been unreachable
        for ``UNREACHABLE_LIMIT`` seconds, and stops within ``STOP_GRACE`` seconds of being
        asked, even when what it was doing waits for the bus."""
        self.stats.start()  # heartbeats from the start: forking a long log takes a while
        watches = [
            asyncio.create_task(self._stop_when_orphaned(stop)),
            asyncio.create_task(stop_when_unreachable(self.nc, stop, UNREACHABLE_LIMIT)),
        ]
        try:
            code = await finish_within(asyncio.create_task(self._run(stop)), stop, STOP_GRACE)
            return 0 if code is None else code
        finally:
            await cancel_and_wait(watches)
            await self.stats.stop()

    @staticmethod
    async def _stop_when_orphaned(stop: asyncio.Event, interval: float = 0.5) -> None:
        """A candidate outlives no arbiter: if the one that started it dies, stop."""
        parent = os.getppid()
        while True:
            await asyncio.sleep(interval)
            if os.getppid() != parent:
                break
        log.warning("the arbiter that started this candidate is gone; stopping")
        stop.set()

    async def _run(self, stop: asyncio.Event) -> int:
        try:
            candidate = await self.resolver.definition(self.version)
            route, _ = await RouteStore(self.js).get(self.agent)
            live = await self.resolver.definition(route.live)
        except Exception as err:
            self._on_fatal(f"cannot load the code: {type(err).__name__}: {err}")
            return await self._failed()
        self.code_version = candidate.version
        mine = next((s for s in route.shadows if s.version == self.version), None)
        self.shadow = ShadowRunner(
            self.nc,
            self.js,
            self.agent,
            self.version,
            live,
            candidate,
            ignore=mine.ignore if mine else (),
            sample=mine.sample if mine else 1.0,
            cpu_budget=mine.cpu if mine else None,
        )
        self.decider = CanaryDecider(self.nc, self.agent, self.version, candidate, self._on_fatal)
        try:
            await self.shadow.fork()
        except MemoryError:
            self._on_fatal("candidate exhausted the sandbox's memory limit while forking")
            return await self._failed()
        except Exception as err:
            self._on_fatal(f"cannot fork live state: {type(err).__name__}: {err}")
            return await self._failed()
        await self.shadow.start()
        await self.decider.start()
        self.phase = "following"
        log.info("candidate %s of %s: shadowing", self.version[:19], self.agent)
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            self.fatal,
            self.shadow.failed,
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        waiters[0].cancel()
        await self.decider.stop()
        await self.shadow.stop()
        if self.shadow.failed.done():
            self._on_fatal(self.shadow.failed.result())
        if self.fatal.done():
            return await self._failed()
        return 0

    async def _failed(self) -> int:
        self.phase = "failed"
        reason = self.fatal.result()
        log.error("candidate %s of %s failed: %s", self.version[:19], self.agent, reason)
        await self.stats.beat()
        return 1
