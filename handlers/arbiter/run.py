"""One evolution, stage by stage: shadow, canary steps, promotion and bake, or rollback.

Every decision is saved in the evolution record and published on ``o.sys.evolution.<agent>``
with its reason and figures. Waiting is recorded once per reason kind, not every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic_core import from_json

from o_bus.errors import ConcurrencyError, OBusError
from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionDecision
from o_bus.evolution.routes import CanaryRoute, Route, RouteStore, ShadowRoute
from o_bus.store import layout
from o_bus.store.event_records import utc_now

from .candidates import CandidateHandle
from .gates import canary_gate, live_gate, shadow_gate
from .live_outcomes import OutcomeCounts, count_outcomes, log_end

__all__ = ["EvolutionRun"]

log = logging.getLogger(__name__)
BY = "arbiter"
BASELINE_RECORDS = 20_000  # how far back live's error rate before the change is counted


class EvolutionRun:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        url: str,
        evolution: Evolution,
        revision: int,
        *,
        agent_args: Sequence[str] = (),
        tick: float = 0.25,
        abort_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.nc, self.js, self.url = nc, js, url
        self.evolution, self.revision = evolution, revision
        self.agent, self.version = evolution.agent, evolution.version
        self.store, self.routes = EvolutionStore(js), RouteStore(js)
        self.agent_args, self.tick = list(agent_args), tick
        self.abort_reason = abort_reason  # an operator's abort, as the arbiter's watch saw it
        self.candidate: CandidateHandle | None = None
        self._stage_started = time.monotonic()
        self._stage_base: CandidateStats | None = None
        self._after: OutcomeCounts | None = None
        self._last_wait: str | None = None

    # -- the record --------------------------------------------------------------------------

    async def _update(self, change: Callable[[Evolution], Evolution]) -> None:
        for _ in range(10):
            try:
                updated = change(self.evolution)
                self.revision = await self.store.save(updated, self.revision)
                self.evolution = updated
                return
            except ConcurrencyError:  # an operator changed it (abort): merge and retry
                self.evolution, self.revision = await self.store.get(self.agent)
        raise ConcurrencyError(self.agent, self.revision, "evolution record keeps changing")

    async def _decide(
        self, action: Any, reason: str, metrics: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        decision = EvolutionDecision(
            at=utc_now(),
            stage=fields.get("stage", self.evolution.stage),
            action=action,
            reason=reason,
            metrics=metrics or {},
        )
        log.info(
            "evolution %s -> %s: %s %s: %s",
            self.agent,
            self.version[:19],
            action,
            decision.stage,
            reason,
        )
        await self._update(lambda e: e.with_decision(decision).model_copy(update=fields))
        try:
            await self.store.record(self.agent, self.version, decision)
        except OBusError as err:
            log.error("%s", err.message)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            await self._stop_candidate()
            raise
        except Exception as err:
            log.exception("evolution of %s failed", self.agent)
            await self._rollback(f"the arbiter failed: {type(err).__name__}: {err}")

    async def _run(self) -> None:
        evolution = self.evolution
        if evolution.status == "requested":
            route, _ = await self.routes.get(self.agent)
            await self._decide(
                "start",
                f"candidate {self.version} of {self.agent}, requested by "
                f"{evolution.requested_by or 'unknown'}",
                status="running",
                stage="shadow",
                previous_live=route.live,
            )
        if self.evolution.stage in ("live",):
            await self._bake()
            return
        await self._start_candidate()
        await self._route(self._with_shadow)
        await self._run_stages()

    async def _run_stages(self) -> None:
        stages = ["shadow", *[f"canary-{w}" for w in self.evolution.plan.canary_steps]]
        start = stages.index(self.evolution.stage) if self.evolution.stage in stages else 0
        for stage in stages[start:]:
            if stage != self.evolution.stage:
                await self._enter(stage)
            if not await self._gate_loop(stage):
                return
            if stage == "shadow":
                await self._mark("baseline_until")  # live code decided everything so far
        await self._mark("baseline_until")
        await self._promote()

    async def _mark(self, name: str) -> int:
        """Record (once, durably) where the agent's log is now; the gates count from it."""
        if name not in self.evolution.marks:
            seq = await log_end(self.js, self.agent)
            await self._update(lambda e: e.model_copy(update={"marks": {**e.marks, name: seq}}))
        return self.evolution.marks[name]

    async def _enter(self, stage: str) -> None:
        if stage.startswith("canary-"):
            weight = int(stage.removeprefix("canary-"))
            canary = CanaryRoute(version=self.version, weight=weight)
            await self._route(lambda r: r.model_copy(update={"canary": canary}))
        self._stage_started = time.monotonic()
        self._stage_base = self.candidate.latest if self.candidate else None
        self._last_wait = None
        await self._update(lambda e: e.model_copy(update={"stage": stage}))

    async def _gate_loop(self, stage: str) -> bool:
        """Wait for a verdict on ``stage``; True when it passed, False after a rollback."""
        assert self.candidate is not None
        self._stage_started = time.monotonic()
        self._stage_base = self.candidate.latest
        while True:
            if await self._aborted():
                return False
            if self.candidate.ended.done():
                await self._rollback(self.candidate.ended.result())
                return False
            latest = self.candidate.latest
            if latest is None or latest.phase != "following":
                await self._wait(f"candidate is {latest.phase if latest else 'starting'}", {})
            else:
                age = time.monotonic() - self._stage_started
                gate = shadow_gate if stage == "shadow" else canary_gate
                verdict = gate(self.evolution.plan, self._stage_base, latest, age)
                if verdict.outcome == "fail":
                    await self._rollback(verdict.reason, verdict.metrics)
                    return False
                if verdict.outcome == "pass":
                    await self._decide("advance", verdict.reason, verdict.metrics)
                    return True
                await self._wait(verdict.reason, verdict.metrics)
            await asyncio.sleep(self.tick)

    async def _wait(self, reason: str, metrics: dict[str, Any]) -> None:
        kind = reason.split(":")[0]
        if kind != self._last_wait:
            self._last_wait = kind
            await self._decide("wait", f"inconclusive, paused: {reason}", metrics)
        else:
            await self._update(lambda e: e.model_copy(update={"metrics": metrics}))

    async def _aborted(self) -> bool:
        reason = self.abort_reason() or self.evolution.abort_requested
        if reason is None:
            return False
        await self._rollback(f"aborted by an operator: {reason}", status="aborted")
        return True

    # -- promotion, bake, rollback -----------------------------------------------------------

    async def _promote(self) -> None:
        previous = self.evolution.previous_live
        version = self.version
        await self._route(
            lambda r: r.model_copy(
                update={
                    "live": version,
                    "previous_live": previous,
                    "canary": None,
                    "shadows": tuple(s for s in r.shadows if s.version != version),
                }
            )
        )
        code_version = (
            self.candidate.latest.code_version if self.candidate and self.candidate.latest else ""
        )
        await self._stop_candidate()
        await self._decide(
            "promote",
            "every stage passed: live switches to the candidate by hot reload",
            stage="live",
            code_version=code_version,
        )
        await self._bake()

    async def _bake(self) -> None:
        self._stage_started = time.monotonic()
        self._last_wait = None
        until = self.evolution.marks.get("baseline_until") or await self._mark("baseline_until")
        before: OutcomeCounts | None = None
        while True:
            if await self._aborted():
                return
            running = await self._live_code_version()
            if running == self.evolution.code_version:
                await self._mark("bake_from")  # live reports the new code: it decides from here
            try:
                if before is None:
                    start = max(0, until - BASELINE_RECORDS)
                    before = await count_outcomes(self.js, self.agent, start, until)
                after = await self._outcomes_since_reload()
            except OBusError as err:  # no verdict on a log that cannot be read now
                await self._wait(f"cannot read live's log: {err.message}", {})
                await asyncio.sleep(self.tick)
                continue
            age = time.monotonic() - self._stage_started
            verdict = live_gate(
                self.evolution.plan, before, after, running, self.evolution.code_version, age
            )
            if verdict.outcome == "fail":
                await self._rollback(verdict.reason, verdict.metrics)
                return
            if verdict.outcome == "pass":
                await self._decide(
                    "done", verdict.reason, verdict.metrics, status="promoted", stage="done"
                )
                return
            await self._wait(verdict.reason, verdict.metrics)
            await asyncio.sleep(self.tick)

    async def _outcomes_since_reload(self) -> OutcomeCounts | None:
        start = self.evolution.marks.get("bake_from")
        if start is None:
            return None
        if self._after is None:
            self._after = OutcomeCounts(first_seq=start + 1, last_seq=start)
        return await count_outcomes(self.js, self.agent, self._after.last_seq, tally=self._after)

    async def _rollback(
        self, reason: str, metrics: dict[str, Any] | None = None, status: str = "rolled_back"
    ) -> None:
        version, previous = self.version, self.evolution.previous_live

        def restore(route: Route) -> Route:
            live = previous if route.live == version else route.live
            return route.model_copy(
                update={
                    "live": live,
                    "canary": None
                    if route.canary and route.canary.version == version
                    else route.canary,
                    "shadows": tuple(s for s in route.shadows if s.version != version),
                }
            )

        await self._route(restore, why=f"rollback: {reason}")
        await self._stop_candidate()
        await self._decide("rollback", reason, metrics, status=status, stage="done")

    # -- helpers -----------------------------------------------------------------------------

    def _with_shadow(self, route: Route) -> Route:
        if any(s.version == self.version for s in route.shadows):
            return route
        plan = self.evolution.plan
        shadow = ShadowRoute(
            version=self.version,
            ignore=plan.ignore,
            sample=plan.shadow_sample,
            cpu=plan.shadow_cpu,
        )
        return route.model_copy(update={"shadows": (*route.shadows, shadow)})

    async def _route(self, change: Callable[[Route], Route], why: str | None = None) -> None:
        reason = why or f"evolution to {self.version}: stage {self.evolution.stage}"
        await self.routes.update(self.agent, change, by=BY, reason=reason)

    async def _start_candidate(self) -> None:
        self.candidate = CandidateHandle(
            self.nc,
            self.url,
            self.agent,
            self.version,
            self.evolution.plan.limits,
            self.agent_args,
        )
        await self.candidate.start()

    async def _stop_candidate(self) -> None:
        if self.candidate is not None:
            await self.candidate.stop()

    async def _live_code_version(self) -> str | None:
        """The code version live's active process reports (None: it does not answer)."""
        try:
            msg = await self.nc.request(
                layout.control_subject(self.agent, "status"), b"", timeout=1.0
            )
            return str(from_json(msg.data)["code_version"])
        except (nats.errors.Error, ValueError, KeyError):
            return None
