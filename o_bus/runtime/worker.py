"""The agent worker's lifecycle shell: recovers state, consumes the agent's WAL in order,
hands each record to the decider and its verdict to the group committer; lifecycle states,
code switches and stop.

Hot path, per request (``_on_request``, a nats-py callback with no ``await``): read the WAL
record, decide (:class:`~o_bus.decision.Decider`: pure), stage. The group committer
(:mod:`o_bus.runtime.committer`) appends staged records in atomic batches and then replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic_core import from_json, to_json

from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleChanged, LifecycleState, check_transition
from o_bus.config import CONSUMER_IDLE_HEARTBEAT, RuntimeConfig
from o_bus.decision.decider import DUPLICATE, Decider, Verdict
from o_bus.errors import ConcurrencyError, ConfigurationError, OBusError
from o_bus.events.model import State
from o_bus.evolution.canary_client import CanaryClient
from o_bus.replay.carry_over import carried_state
from o_bus.replay.rebuild import Rebuilt, rebuild
from o_bus.runtime.committer import Committed, GroupCommitter
from o_bus.runtime.duplicates import DuplicateAnswers
from o_bus.runtime.group_commit import Outcome
from o_bus.runtime.metrics import RequestMetrics
from o_bus.runtime.queries import QueryServer
from o_bus.runtime.snapshotter import Snapshotter
from o_bus.runtime.tracing import WorkerTracing
from o_bus.runtime.wal_watchdog import WalWatchdog, last_wal_seq
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.event_log import NewEvent, outcome_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.snapshots import SnapshotStore
from o_bus.tracing import tracer
from o_bus.wire.codec import Encoding
from o_bus.wire.wal_record import WalRecord, delivery_of

__all__ = ["AgentWorker"]

log = logging.getLogger(__name__)


class AgentWorker:
    """Runs one agent instance inside the current process."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        name: str,
        definition: AgentDefinition[Any],
        config: RuntimeConfig | None = None,
    ) -> None:
        self.nc, self.js, self.name = nc, js, name
        self.config = config or RuntimeConfig()
        self.log = JetStreamEventLog(nc, js, name)
        self.snapshots = SnapshotStore(js)
        self.snapshotter = Snapshotter(self.snapshots, name)
        self.dead_letters = DeadLetters(js)
        self.lifecycle = LifecycleState.INITIALIZING
        self._announced = False  # the first transition has no previous state
        self.decider = Decider(name, definition)
        # The head: state, agent sequence and WAL sequence including staged requests. What is
        # durable is the committer's ``committed`` position.
        self.state: State = definition.initial_state()
        self.seq = 0
        self.processed_wal = 0
        self.committer = GroupCommitter(
            nc, self.log, self.config, Committed(self.state), after_batch=self._after_batch
        )
        self.duplicates = DuplicateAnswers(self)
        self._subs: list[Subscription] = []
        self.wal_backlog = 0
        self.queries: QueryServer | None = None  # projections and queries, while serving
        self.canary: CanaryClient | None = None  # set while a canary version decides some requests
        self._wal_sub: Subscription | None = None
        self._consumer_lock = asyncio.Lock()  # one change of the WAL consumer at a time
        self.watchdog = WalWatchdog(
            name,
            lambda: self.processed_wal,
            lambda: not self.paused and not self._consumer_lock.locked(),
            lambda: last_wal_seq(js, name),
            self.consume_again,
        )
        self.paused = ""  # why an operator paused it ("": serving)
        found = tracer()
        self.tracing = WorkerTracing(found, name) if found is not None else None  # None: off

    # -- what others read ----------------------------------------------------------------------

    @property
    def definition(self) -> AgentDefinition[Any]:
        """The code in use (changes on a hot reload)."""
        return self.decider.definition

    @definition.setter
    def definition(self, definition: AgentDefinition[Any]) -> None:
        """Run other code from the start (before ``start``; afterwards, ``switch_code``)."""
        self.decider = Decider(self.name, definition)

    @property
    def committed_state(self) -> State:
        return self.committer.committed.state

    @property
    def committed_seq(self) -> int:
        return self.committer.committed.seq

    @property
    def committed_stream_seq(self) -> int:
        return self.committer.committed.stream_seq

    @property
    def committed_wal(self) -> int:
        return self.committer.committed.wal

    @property
    def metrics(self) -> RequestMetrics:
        return self.committer.metrics

    @property
    def failed(self) -> asyncio.Future[BaseException]:
        """Resolved with the error when the worker can no longer serve (the log moved)."""
        return self.committer.failed

    def pending(self, request_id: str) -> Outcome | None:
        """The outcome of ``request_id`` if it is staged and not yet durable."""
        return self.committer.pending(request_id)

    def cached_reply(self, request_id: str) -> bytes | None:
        return self.committer.cached_reply(request_id)

    async def publish_reply(self, subject: str, reply: dict[str, Any], encoding: Encoding) -> None:
        await self.committer.publish_reply(subject, reply, encoding)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _transition(self, new: LifecycleState, reason: str) -> None:
        check_transition(self.lifecycle, new) if new != self.lifecycle else None
        event = LifecycleChanged(
            agent=self.name,
            previous=self.lifecycle if self._announced else None,
            state=new,
            reason=reason,
            code_version=self.definition.version,
            pid=os.getpid(),
            at=utc_now(),
        )
        self.lifecycle = new
        self._announced = True
        try:
            await self.js.publish(
                layout.lifecycle_subject(self.name), event.model_dump_json().encode(), timeout=5.0
            )
        except nats.errors.Error:
            log.exception("could not record lifecycle change of %s", self.name)

    async def start(self, *, resume: Rebuilt | None = None, fence_as: str | None = None) -> None:
        """Recover (snapshot + tail, or ``resume`` + tail), then serve the WAL from where
        processing stopped. With ``fence_as``, first fence the log so that any earlier writer
        of this agent can no longer append."""
        await self._transition(LifecycleState.INITIALIZING, "starting")
        await ensure_agent_stream(self.js, self.name)
        if resume is None:
            rebuilt = await rebuild(self.definition, self.log, self.snapshots)
        else:
            rebuilt = await rebuild(self.definition, self.log, None, resume_from=resume)
        end = await self.log.last_position()
        if end.seq != rebuilt.position.seq:
            raise ConcurrencyError(self.name, end.guard_seq, "the log moved during recovery")
        wal_resume = max(rebuilt.position.wal_seq, end.wal_seq)
        committer = self.committer
        committer.guard_seq = end.guard_seq
        if fence_as is not None:
            committer.guard_seq = await self.log.fence(end.guard_seq, fence_as, wal_resume)
        position = rebuilt.position
        self.state, self.seq, self.processed_wal = rebuilt.state, position.seq, wal_resume
        committer.committed = Committed(
            rebuilt.state, position.seq, position.stream_seq, wal_resume
        )
        self.snapshotter.seq = rebuilt.snapshot.seq if rebuilt.snapshot else 0
        log.info(
            "agent %s recovered at seq %d (snapshot at %d, %d events replayed), WAL from %d",
            self.name,
            self.seq,
            self.snapshotter.seq,
            rebuilt.replayed,
            self.processed_wal + 1,
        )
        committer.start(self.name)
        for operation, handler in (
            ("dup", self.duplicates.on_request),
            ("snapshot", self._on_snapshot_request),
            ("status", self._on_status_request),
            ("pause", self._on_pause_request),
            ("resume", self._on_resume_request),
        ):
            self._subs.append(
                await self.nc.subscribe(layout.control_subject(self.name, operation), cb=handler)
            )
        await self._consume_wal()
        self.watchdog.start()
        self.queries = QueryServer(
            self.nc,
            self.js,
            self.name,
            lambda: self.definition,  # the code in use, also after a hot reload
            lambda: (self.committed_state, self.committed_seq),
        )
        await self.queries.start()
        await self._transition(LifecycleState.RUNNING, "recovered and serving")

    async def _consume_wal(self) -> None:
        self._wal_sub = await self.js.subscribe(
            layout.wal_subject(self.name),
            stream=layout.WAL_STREAM,
            cb=self._on_request,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.processed_wal + 1,
                idle_heartbeat=CONSUMER_IDLE_HEARTBEAT,
            ),
            pending_msgs_limit=65536,
        )

    async def _stop_consuming(self) -> None:
        sub, self._wal_sub = self._wal_sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def consume_again(self) -> None:
        """Start a new WAL consumer from the first record not yet taken: the remedy of the
        watchdog for a consumer that stopped delivering. Nothing is lost or taken twice."""
        async with self._consumer_lock:
            if self.paused:
                return
            await self._stop_consuming()
            try:
                await self._consume_wal()
            except nats.errors.Error as err:  # the watchdog tries again at its next check
                log.warning("agent %s: cannot consume its WAL again yet: %s", self.name, err)

    def set_canary(self, canary: CanaryClient | None) -> None:
        """Let ``canary`` decide the WAL records marked for its version (None: live decides)."""
        self.canary = canary

    async def switch_code(self, definition: AgentDefinition[Any], reason: str) -> None:
        """Switch to other code with no request lost or failed: stop taking requests (they
        wait in the WAL), drain what is in flight, carry the state over (migrating it when
        the state schema changed), then resume from the next WAL record with the new code."""
        if definition.name != self.definition.name:
            raise ConfigurationError(
                f"cannot reload {self.name!r}: code defines {definition.name!r}, "
                f"not {self.definition.name!r}"
            )
        async with self._consumer_lock:
            await self._switch_code(definition, reason)

    async def _switch_code(self, definition: AgentDefinition[Any], reason: str) -> None:
        await self._stop_consuming()
        committer = self.committer
        try:
            await committer.idle()
            if self.failed.done():
                raise OBusError(f"agent {self.name!r} stopped while reloading")
            committed = committer.committed
            state = await carried_state(
                self.definition,
                definition,
                committed.state,
                committed.seq,
                self.log,
                self.snapshots,
            )
            previous = self.definition.version
            self.decider = Decider(self.name, definition)
            committer.committed = dataclasses.replace(committed, state=state)
            self.state, self.processed_wal = state, committed.wal
            committer.forget_replies()  # replies of the old code
            if committed.seq:  # so a restart need not migrate again
                self._schedule_snapshot(state)
        finally:
            if not self.paused:
                await self._consume_wal()
        await self._transition(self.lifecycle, f"{reason} ({previous} -> {definition.version})")

    async def pause(self, reason: str) -> None:
        """Stop deciding requests (they wait in the WAL) until :meth:`resume`: what is in
        flight is committed first. Holds until resumed or until this process ends."""
        if self.paused or self.lifecycle not in (LifecycleState.RUNNING, LifecycleState.EVOLVING):
            return
        self.paused = reason or "paused"
        async with self._consumer_lock:
            await self._stop_consuming()
        await self.committer.idle()
        committed = self.committer.committed
        self.state, self.processed_wal = committed.state, committed.wal
        await self._transition(LifecycleState.SUSPENDED, f"paused: {self.paused}")

    async def resume(self, reason: str) -> None:
        """Decide requests again, from the first one not yet decided."""
        if not self.paused or self.lifecycle != LifecycleState.SUSPENDED:
            return
        self.paused = ""
        async with self._consumer_lock:
            await self._consume_wal()
        await self._transition(LifecycleState.RUNNING, f"resumed: {reason or 'resumed'}")

    async def set_evolving(self, evolving: bool, reason: str) -> None:
        """Record that a candidate of this agent is (or is no longer) under test."""
        target = LifecycleState.EVOLVING if evolving else LifecycleState.RUNNING
        running = (LifecycleState.RUNNING, LifecycleState.EVOLVING)
        if self.lifecycle in running and self.lifecycle != target:
            await self._transition(target, reason)

    async def stop(self, reason: str = "shutdown") -> None:
        """Stop taking requests, make staged work durable, record the transition."""
        if self.queries is not None:
            await self.queries.stop()
        await self.watchdog.stop()
        async with self._consumer_lock:
            await self._stop_consuming()
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs.clear()
        await self.committer.stop()
        if self.tracing is not None:
            self.tracing.abandon("the agent stopped before this request was committed")
        await self.snapshotter.wait()
        await self.dead_letters.flush()
        if self.lifecycle != LifecycleState.TERMINATED:
            await self._transition(LifecycleState.SUSPENDED, reason)

    # -- hot path ----------------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        wal_seq, accepted_ns, self.wal_backlog = delivery_of(msg)
        if wal_seq <= self.processed_wal:
            return  # redelivered after a consumer reset
        request = WalRecord.from_headers(msg.headers or {}, msg.data, wal_seq, accepted_ns)
        tracing = self.tracing
        if tracing is not None:
            request, span = tracing.deciding(request)
        canary = self.canary
        if canary is not None and request.route == canary.version:
            # The only await on the hot path, for canary requests alone. If the consumer is
            # stopped meanwhile (a reload), the request is not marked processed and comes back.
            decided = await canary.decide(self.state, request)
            if wal_seq <= self.processed_wal:
                if tracing is not None:
                    span.end()  # decided again when it comes back
                return
        else:
            decided = None
        self.processed_wal = wal_seq
        request_id = request.request_id
        replies = self.committer.replies
        cached = replies.get(request_id) if replies.capacity else None
        if cached is not None:
            # The same id again after the WAL's duplicate window: answer, never apply twice.
            reply = {**from_json(cached), "duplicate": True}
            headers = outcome_headers(request_id, wal_seq, DUPLICATE)
            record = NewEvent(b"", headers, self.decider.outcome_subject)
            verdict = Verdict(DUPLICATE, [record], reply, self.state, self.seq)
        else:
            verdict = self.decider.decide(self.state, self.seq, request, decided)
            if verdict.error is not None:
                self._rejected(request, verdict, msg)
            self.state, self.seq = verdict.state, verdict.seq
        outcome = Outcome(
            request_id,
            wal_seq,
            verdict.records,
            request.reply_to,
            verdict.reply,
            request.reply_encoding,
            verdict.state,
            verdict.seq,
            accepted_ns,
        )
        if self.duplicates.early_waiters:
            outcome.waiters.extend(self.duplicates.waiters_for(request_id))
        if tracing is not None:
            tracing.decided(span, verdict, wal_seq)
        self.committer.stage(outcome)

    def _rejected(self, request: WalRecord, verdict: Verdict, msg: Msg) -> None:
        err = verdict.error
        assert err is not None
        if verdict.crashed:
            log.error(
                "agent %s: handler failed on request %r",
                self.name,
                request.request_id,
                exc_info=err.__cause__,
            )
        self.dead_letters.reject(
            self.name, request.request_id, err, msg.data, msg.headers, request.wal_seq
        )

    # -- snapshots and status --------------------------------------------------------------

    def _after_batch(self, committed: Committed) -> None:
        if self.tracing is not None:
            self.tracing.committed(committed.wal)
        if committed.seq - self.snapshotter.seq >= self.config.snapshot_every:
            self._schedule_snapshot(committed.state)

    def _schedule_snapshot(self, state: State) -> None:
        committed = self.committer.committed
        self.snapshotter.schedule(
            self.definition, state, committed.seq, committed.stream_seq, committed.wal
        )

    async def _on_snapshot_request(self, msg: Msg) -> None:
        """Take a snapshot now, of the last durable state; reply with its position."""
        await self.snapshotter.wait()
        self._schedule_snapshot(self.committed_state)
        await self.snapshotter.wait()
        await msg.respond(to_json({"ok": True, "agent": self.name, "seq": self.snapshotter.seq}))

    async def _on_pause_request(self, msg: Msg) -> None:
        await self.pause(msg.data.decode(errors="replace")[:1000])
        await msg.respond(to_json(self.status()))

    async def _on_resume_request(self, msg: Msg) -> None:
        await self.resume(msg.data.decode(errors="replace")[:1000])
        await msg.respond(to_json(self.status()))

    async def _on_status_request(self, msg: Msg) -> None:
        await msg.respond(to_json(self.status()))

    def status(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "definition": self.definition.name,
            "code_version": self.definition.version,
            "lifecycle": self.lifecycle.value,
            "paused": self.paused,
            "seq": self.committed_seq,
            "wal_seq": self.committed_wal,
            "wal_taken": self.processed_wal,  # decided, maybe not yet durable
            "wal_consumer": self._wal_sub is not None,
            "wal_consumer_restarts": self.watchdog.restarts,
            "snapshot_seq": self.snapshotter.seq,
            "pid": os.getpid(),
            "requests": self.metrics.requests,
            "errors": self.metrics.errors,
        }
