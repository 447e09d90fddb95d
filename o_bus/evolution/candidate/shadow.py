"""The shadow: mirror live traffic, evaluate it with the candidate, compare with live.

The shadow forks live state (the live log folded by both the live and the candidate code),
then follows the agent's stream (events and outcome records, each carrying the WAL sequence
of its request). When live has finished a request, the shadow reads that request from the WAL
and evaluates it twice: with the live code (to learn noise: fields that differ between two
live evaluations) and with the candidate. The candidate's output is compared with what live
actually recorded; differences go to ``o.diff.<agent>`` with both outputs. Then both states
advance by live's recorded events, so every comparison starts from live's real state.

Nothing here writes to the agent's stream, answers a client or runs a side effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from o_bus.agent.context import DecisionContext
from o_bus.agent.definition import AgentDefinition
from o_bus.decision.decider import context_of
from o_bus.events.model import State
from o_bus.evolution.diff import IgnoreRules, NoiseModel, compare
from o_bus.evolution.records import DiffRecord
from o_bus.replay.carry_over import carried_state
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.event_records import H_REQUEST, H_WAL, delivery_of
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.snapshots import SnapshotStore
from o_bus.tracing import tracer
from o_bus.tracing.names import AGENT, CODE_VERSION, REQUEST_ID, SHADOW_EVALUATE, WAL_SEQ
from o_bus.wire.headers import O_OUTCOME, O_VERSION
from o_bus.wire.wal_record import WalRecord

from .budget import CpuBudget
from .evaluation import Evaluation, Output, evaluate
from .live_records import LiveRecord, decode, fitness_scores, recorded_output
from .stats import LatencyWindow

__all__ = ["ShadowCounters", "ShadowRunner"]

log = logging.getLogger(__name__)
IDLE_FLUSH_S = 0.05  # a request's last record is known when the next one starts, or after this


@dataclass
class ShadowCounters:
    compared: int = 0
    differing: int = 0
    candidate_failures: int = 0
    live_failures: int = 0
    skipped: int = 0
    shed: int = 0  # not compared: sampled out, or skipped while far behind live
    rests: int = 0  # times the shadow stopped reading to keep within its CPU budget
    reforks: int = 0  # times it forked again after falling more than refork_lag behind
    unread: int = 0  # live records it never read (skipped by those forks)
    rested_seconds: float = 0.0
    candidate_latency: LatencyWindow = field(default_factory=LatencyWindow)
    live_latency: LatencyWindow = field(default_factory=LatencyWindow)
    fitness_n: int = 0
    candidate_fitness_sum: float = 0.0
    live_fitness_sum: float = 0.0
    fitness_gain_sq_sum: float = 0.0
    last_failure: str | None = None
    lag: int = 0


class ShadowRunner:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        version: str,
        live: AgentDefinition[Any],
        candidate: AgentDefinition[Any],
        *,
        ignore: tuple[str, ...] = (),
        sample: float = 1.0,
        shed_lag: int = 2000,
        refork_lag: int = 20_000,
        cpu_budget: float | None = None,
        max_recorded_diffs: int = 10_000,
    ) -> None:
        self.nc, self.js, self.agent, self.version = nc, js, agent, version
        self.live, self.candidate = live, candidate
        self.ignore = IgnoreRules(ignore)
        self.noise = NoiseModel()
        self.counters = ShadowCounters()
        self.max_recorded_diffs = max_recorded_diffs
        self.sample, self.shed_lag, self.refork_lag = sample, shed_lag, refork_lag
        self.budget = CpuBudget(cpu_budget) if cpu_budget else None
        self._governor: asyncio.Task[None] | None = None
        self.recorded_diffs = 0
        self.live_state: State = live.initial_state()
        self.candidate_state: State = candidate.initial_state()
        self.fork_seq = 0
        self.seq = 0
        self._after = 0  # stream sequence of the fork, then of the last record read
        self._group: list[LiveRecord] = []
        self._group_wal = 0
        self._last_record = 0.0
        self._lock = asyncio.Lock()
        self._sub: Subscription | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.tracer = tracer()  # None: tracing is off

    async def fork(self) -> None:
        """Start from live's current state, folded by each code version."""
        eventlog = JetStreamEventLog(self.nc, self.js, self.agent)
        snapshots = SnapshotStore(self.js)
        end = await eventlog.last_position()
        live = await rebuild(self.live, eventlog, snapshots, at_seq=end.seq)
        # The candidate starts from live's state as a hot reload would hand it over.
        self.candidate_state = await carried_state(
            self.live, self.candidate, live.state, live.position.seq, eventlog, snapshots
        )
        self.live_state = live.state
        self.fork_seq = self.seq = live.position.seq
        self._after = live.position.stream_seq
        log.info("shadow %s of %s forked at seq %d", self.version[:19], self.agent, self.fork_seq)

    async def start(self) -> None:
        await self._subscribe()
        self._flusher = asyncio.create_task(self._flush_when_idle(), name="shadow-flush")
        self._governor = asyncio.create_task(self._govern(self.budget), name="shadow-govern")

    async def _govern(self, budget: CpuBudget | None, period: float = 0.5) -> None:
        """Stop reading, and fork again from live's latest state, when the CPU cap (if any)
        calls for a rest, or when the shadow is more than ``refork_lag`` records behind (under
        SCHED_IDLE on a busy machine): its queue must never overflow, which would lose live
        records. The records in between are never read (``unread``)."""
        if budget is not None:
            budget.restart()
        while True:
            await asyncio.sleep(period)
            rest = budget.rest_needed() if budget is not None else 0.0
            if rest <= 0 and self.counters.lag <= self.refork_lag:
                continue
            await self.fork_again(rest)
            if budget is not None:
                budget.restart()

    async def fork_again(self, rest: float = 0.0) -> None:
        """Stop reading, rest ``rest`` seconds, fork from live's latest state, read again."""
        async with self._lock:
            await self._unsubscribe()
            self._group = []  # a request cut in half is not compared
        if rest > 0:
            self.counters.rests += 1
            self.counters.rested_seconds += rest
            await asyncio.sleep(rest)
        else:
            self.counters.reforks += 1
        read_up_to = self._after
        await self.fork()
        self.counters.unread += max(0, self._after - read_up_to)
        self.counters.lag = 0
        await self._subscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _subscribe(self) -> None:
        self._sub = await self.js.subscribe(
            layout.agent_log_wildcard(self.agent),
            stream=layout.events_stream(self.agent),
            cb=self.on_record,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._after + 1
            ),
            pending_msgs_limit=65536,
        )

    async def stop(self) -> None:
        tasks = [t for t in (self._governor, self._flusher) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._unsubscribe()

    # -- following live ----------------------------------------------------------------------

    @property
    def pending(self) -> list[LiveRecord]:
        """The records read of the request in progress (it completes when the next begins)."""
        return list(self._group)

    async def on_record(self, msg: Msg) -> None:
        """Take the next record of live's log (the subscription's callback)."""
        stream_seq, _, in_stream = delivery_of(msg)
        # Behind by: what the server has not sent yet, plus what waits in our own queue.
        queued = self._sub.pending_msgs if self._sub is not None else 0
        self.counters.lag = in_stream + queued
        if stream_seq <= self._after:
            return  # delivered again after a consumer reset
        if stream_seq != self._after + 1:
            # nats-py drops what a slow subscriber cannot queue after the ordered consumer
            # has counted it, so a gap means live records were lost: say so, never go on.
            self._fail(
                f"shadow fell too far behind live: records {self._after + 1}..{stream_seq - 1} "
                "of the agent's log were dropped before it could read them"
            )
            return
        self._after = stream_seq
        kind = msg.subject.split(".", 2)[1]
        if kind not in ("evt", "outcome"):
            return  # a takeover fence
        headers = msg.headers or {}
        wal_seq = int(headers.get(H_WAL, "0"))
        async with self._lock:
            if self._group and wal_seq != self._group_wal:
                await self._complete()
            self._group_wal = wal_seq
            self._group.append(LiveRecord(kind, headers, msg.data))
            self._last_record = time.monotonic()

    async def _flush_when_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_FLUSH_S)
            if self._group and time.monotonic() - self._last_record >= IDLE_FLUSH_S:
                async with self._lock:
                    if self._group:
                        await self._complete()

    async def _complete(self) -> None:
        records, wal_seq = self._group, self._group_wal
        self._group = []
        try:
            await self._evaluate(wal_seq, records)
        except MemoryError:
            self._fail("candidate exhausted the sandbox's memory limit")
        except Exception as err:  # the shadow must report, not die silently
            log.exception("shadow of %s failed at WAL seq %d", self.agent, wal_seq)
            self._fail(f"shadow failed: {type(err).__name__}: {err}")

    def _fail(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_result(reason)

    # -- one request -------------------------------------------------------------------------

    async def _evaluate(self, wal_seq: int, records: list[LiveRecord]) -> None:
        outcomes = {r.headers.get(O_OUTCOME) for r in records if r.kind == "outcome"}
        live_events = [r for r in records if r.kind == "evt"]
        if "duplicate" in outcomes or wal_seq == 0:
            return  # answered from the reply cache: nothing was decided
        if self.sheds(records[0].headers.get(H_REQUEST, ""), wal_seq):
            self.counters.shed += 1
            self._advance(live_events)
            return
        try:
            request = await self.js.get_msg(layout.WAL_STREAM, wal_seq, direct=True)
        except nats.errors.Error:
            self.counters.skipped += 1  # the WAL no longer holds it
            self._advance(live_events)
            return
        record = WalRecord.from_stored(wal_seq, request.headers, request.data)
        span = None
        if self.tracer is not None:
            span = self.tracer.start(
                SHADOW_EVALUATE,
                record.traceparent,
                record.tracestate,
                attributes={
                    AGENT: self.agent,
                    CODE_VERSION: self.candidate.version,
                    REQUEST_ID: record.request_id,
                    WAL_SEQ: wal_seq,
                },
            )
        primary = recorded_output(records)
        secondary = evaluate(self.live, self.live_state, record)
        cand = evaluate(self.candidate, self.candidate_state, record)
        self._count(secondary, cand)
        comparison = compare(primary, secondary.output, cand.output, self.noise, self.ignore)
        self.counters.compared += 1
        if span is not None:
            span.set("o_bus.differs", comparison.differs)
            if cand.failure is not None:
                span.fail(cand.failure)
            span.end()
        if comparison.differs:
            self.counters.differing += 1
            if self.recorded_diffs < self.max_recorded_diffs:
                self.recorded_diffs += 1
                await self._record_diff(record, primary, cand.output, comparison.as_json())
        self._judge(secondary, cand, live_events, context_of(record))
        self._advance(live_events)

    def sheds(self, request_id: str, wal_seq: int) -> bool:
        """Leave this request uncompared? When the shadow is more than ``shed_lag`` records
        behind live (it then only follows live's state, which is cheap, so it stays current
        and takes little CPU from live), or when the request falls outside the sample (the
        same request ids are always in it)."""
        if self.counters.lag > self.shed_lag:
            return True
        if self.sample >= 1.0:
            return False
        key = (request_id or str(wal_seq)).encode()
        return zlib.crc32(key) / 2**32 >= self.sample

    def _count(self, secondary: Evaluation, cand: Evaluation) -> None:
        counters = self.counters
        counters.live_latency.add(secondary.elapsed_ms)
        counters.candidate_latency.add(cand.elapsed_ms)
        if secondary.failure is not None:
            counters.live_failures += 1
        if cand.failure is not None:
            counters.candidate_failures += 1
            counters.last_failure = cand.failure

    def _judge(
        self,
        secondary: Evaluation,
        cand: Evaluation,
        live_events: list[LiveRecord],
        context: DecisionContext,
    ) -> None:
        scores = fitness_scores(
            self.live,
            self.candidate,
            (self.live_state, self.candidate_state),
            (secondary, cand),
            live_events,
            context,
        )
        if scores is not None:
            self.counters.fitness_n += 1
            self.counters.live_fitness_sum += scores[0]
            self.counters.candidate_fitness_sum += scores[1]
            self.counters.fitness_gain_sq_sum += (scores[1] - scores[0]) ** 2

    def _advance(self, live_events: list[LiveRecord]) -> None:
        if not live_events:
            return
        self.live_state = self.live.fold(
            self.live_state, [decode(self.live, r) for r in live_events]
        )
        try:
            self.candidate_state = self.candidate.fold(
                self.candidate_state, [decode(self.candidate, r) for r in live_events]
            )
        except Exception as err:
            self.counters.candidate_failures += 1
            self.counters.last_failure = f"cannot fold live's events: {type(err).__name__}: {err}"
        self.seq += len(live_events)

    async def _record_diff(
        self,
        request: WalRecord,
        live: Output,
        candidate: Output,
        comparison: dict[str, Any],
    ) -> None:
        record = DiffRecord(
            agent=self.agent,
            version=self.version,
            code_version=self.candidate.version,
            live_code_version=self.live.version,
            wal_seq=request.wal_seq,
            request_id=request.request_id or None,
            command=request.command or None,
            live=live,
            candidate=candidate,
            fields=comparison["fields"],
            ignored=comparison["ignored"],
        )
        try:
            await self.js.publish(
                layout.diff_subject(self.agent),
                record.model_dump_json().encode(),
                headers={O_VERSION: self.version, H_REQUEST: record.request_id or ""},
            )
        except nats.errors.Error as err:
            log.warning(
                "diff of %s at WAL seq %d not recorded: %s", self.agent, request.wal_seq, err
            )
