"""The agent worker: recovers state, consumes the agent's WAL in order, runs pure handlers,
group-commits the events, and replies straight to the client once they are durable.

Hot path, per request (``_on_request``, a nats-py callback with no ``await``): parse, decide,
stage. The flusher task appends staged events in atomic batches (one in flight at a time, so
each batch's optimistic-concurrency check is exact) and then sends the replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
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
from o_bus.config import RuntimeConfig
from o_bus.errors import ConcurrencyError, ConfigurationError, OBusError
from o_bus.events.model import State
from o_bus.evolution.canary_client import CanaryClient
from o_bus.replay.carry_over import carried_state
from o_bus.replay.rebuild import Rebuilt, rebuild
from o_bus.runtime.duplicates import DuplicateAnswers, reply_encoding_from
from o_bus.runtime.group_commit import Outcome, ReplyCache, StagedRequests
from o_bus.runtime.metrics import RequestMetrics
from o_bus.runtime.queries import QueryServer
from o_bus.runtime.snapshotter import Snapshotter
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.event_log import (
    NewEvent,
    delivery_of,
    event_headers,
    outcome_headers,
    utc_now,
)
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.snapshots import SnapshotStore
from o_bus.wire.cloudevents import ROUTE_HEADER
from o_bus.wire.codec import Encoding, encode, encoding_for
from o_bus.wire.reply import STATUS_HEADER, error_reply_from, ok_reply

__all__ = ["AgentWorker"]

log = logging.getLogger(__name__)
_JSON_HEADERS = {"Content-Type": Encoding.JSON.value, STATUS_HEADER: "ok"}


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
        self.nc, self.js, self.name, self.definition = nc, js, name, definition
        self.config = config or RuntimeConfig()
        self.log = JetStreamEventLog(nc, js, name)
        self.snapshots = SnapshotStore(js)
        self.snapshotter = Snapshotter(self.snapshots, name)
        self.dead_letters = DeadLetters(js)
        self.lifecycle = LifecycleState.INITIALIZING
        self._announced = False  # the first transition has no previous state
        self.state: State = definition.initial_state()  # includes staged events
        self.committed_state: State = self.state
        self.seq = 0  # agent sequence including staged events
        self.committed_seq = 0
        self.committed_stream_seq = 0  # stream sequence of the last durable event
        self.guard_seq = 0  # what the next append must expect (events and fences)
        self.processed_wal = 0
        self.committed_wal = 0
        self._staged = StagedRequests(self.config.max_batch)
        self._replies = ReplyCache(self.config.reply_cache)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is staged
        self._idle.set()
        self.duplicates = DuplicateAnswers(self)
        self._subs: list[Subscription] = []
        self._flusher: asyncio.Task[None] | None = None
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._outcome_subject = layout.outcome_subject(name)
        self.metrics = RequestMetrics()
        self.wal_backlog = 0
        self.queries: QueryServer | None = None  # projections and queries, while serving
        self.canary: CanaryClient | None = None  # set while a canary version decides some requests
        self._wal_sub: Subscription | None = None

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
        self.guard_seq = end.guard_seq
        if fence_as is not None:
            self.guard_seq = await self.log.fence(end.guard_seq, fence_as, wal_resume)
        self.state = self.committed_state = rebuilt.state
        self.seq = self.committed_seq = rebuilt.position.seq
        self.committed_stream_seq = rebuilt.position.stream_seq
        self.processed_wal = self.committed_wal = wal_resume
        self.snapshotter.seq = rebuilt.snapshot.seq if rebuilt.snapshot else 0
        log.info(
            "agent %s recovered at seq %d (snapshot at %d, %d events replayed), WAL from %d",
            self.name,
            self.seq,
            self.snapshotter.seq,
            rebuilt.replayed,
            self.processed_wal + 1,
        )
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.name}")
        for operation, handler in (
            ("dup", self.duplicates.on_request),
            ("snapshot", self._on_snapshot_request),
            ("status", self._on_status_request),
        ):
            self._subs.append(
                await self.nc.subscribe(layout.control_subject(self.name, operation), cb=handler)
            )
        await self._consume_wal()
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
            ),
            pending_msgs_limit=65536,
        )

    async def _stop_consuming(self) -> None:
        sub, self._wal_sub = self._wal_sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

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
        await self._stop_consuming()
        try:
            await self._idle.wait()
            if self.failed.done():
                raise OBusError(f"agent {self.name!r} stopped while reloading")
            state = await carried_state(
                self.definition,
                definition,
                self.committed_state,
                self.committed_seq,
                self.log,
                self.snapshots,
            )
            previous = self.definition.version
            self.definition = definition
            self.state = self.committed_state = state
            self.processed_wal = self.committed_wal
            self._replies = ReplyCache(self.config.reply_cache)  # replies of the old code
            if self.committed_seq:  # so a restart need not migrate again
                self._schedule_snapshot(state)
        finally:
            await self._consume_wal()
        await self._transition(self.lifecycle, f"{reason} ({previous} -> {definition.version})")

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
        await self._stop_consuming()
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs.clear()
        if self._flusher is not None:
            self._wake.set()
            await asyncio.wait(
                [asyncio.ensure_future(self._idle.wait()), self._flusher],
                return_when=asyncio.FIRST_COMPLETED,
            )
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.snapshotter.wait()
        await self.dead_letters.flush()
        if self.lifecycle != LifecycleState.TERMINATED:
            await self._transition(LifecycleState.SUSPENDED, reason)

    # -- hot path ----------------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        wal_seq, accepted_ns, self.wal_backlog = delivery_of(msg)
        if wal_seq <= self.processed_wal:
            return  # redelivered after a consumer reset
        headers = msg.headers or {}
        canary = self.canary
        if canary is not None and headers.get(ROUTE_HEADER) == canary.version:
            # The only await on the hot path, for canary requests alone. If the consumer is
            # stopped meanwhile (a reload), the request is not marked processed and comes back.
            canary_result = await canary.decide(self.state, headers, msg.data)
            if wal_seq <= self.processed_wal:
                return
        else:
            canary_result = None
        self.processed_wal = wal_seq
        request_id = headers.get("ce-id", "")
        reply_to = headers.get("O-Reply")
        encoding = reply_encoding_from(headers)
        cached = self._replies.get(request_id) if self._replies.capacity else None
        if cached is not None:
            # The same id again after the WAL's duplicate window: answer, never apply twice.
            reply = {**from_json(cached), "duplicate": True}
            headers = outcome_headers(request_id, wal_seq, "duplicate")
            self._stage_without_event(
                request_id, wal_seq, reply_to, reply, encoding, headers, accepted_ns
            )
            return
        definition = self.definition
        code_version = definition.version
        try:
            if canary_result is not None:
                if canary_result.rejection is not None:
                    raise canary_result.rejection
                assert canary_result.decision is not None
                decision = canary_result.decision
                code_version = canary_result.code_version
            else:
                command = definition.parse_command(
                    headers.get("ce-type", ""), msg.data, encoding_for(headers.get("Content-Type"))
                )
                decision = definition.decide(self.state, command)
        except OBusError as err:
            self._stage_rejection(request_id, wal_seq, reply_to, encoding, err, msg, accepted_ns)
            return
        except Exception as err:  # a bug in agent code must not stop the agent
            log.exception("agent %s: handler failed on request %r", self.name, request_id)
            failure = OBusError(f"agent code raised {type(err).__name__}: {err}")
            self._stage_rejection(
                request_id, wal_seq, reply_to, encoding, failure, msg, accepted_ns
            )
            return
        staged: list[NewEvent] = []
        out: list[dict[str, Any]] = []
        seq = self.seq
        now = utc_now()
        name = self.name
        for event in decision.events:
            seq += 1
            staged.append(
                NewEvent(
                    event.model_dump_json().encode(),
                    event_headers(
                        name,
                        seq,
                        event.event_type,
                        event.event_version,
                        request_id,
                        wal_seq,
                        code_version,
                        now,
                    ),
                )
            )
            out.append(
                {
                    "seq": seq,
                    "type": event.event_type,
                    "version": event.event_version,
                    "data": event.model_dump(mode="json"),
                }
            )
        if not staged:  # no event: the outcome is still recorded, for fencing and recovery
            staged.append(
                NewEvent(b"", outcome_headers(request_id, wal_seq, "noop"), self._outcome_subject)
            )
        self.seq = seq
        self.state = decision.state
        self._stage(
            Outcome(
                request_id,
                wal_seq,
                staged,
                reply_to,
                ok_reply(name, request_id, seq, out),
                encoding,
                decision.state,
                seq,
                accepted_ns,
            )
        )

    def pending(self, request_id: str) -> Outcome | None:
        """The outcome of ``request_id`` if it is staged and not yet durable."""
        return self._staged.by_request.get(request_id)

    def cached_reply(self, request_id: str) -> bytes | None:
        return self._replies.get(request_id)

    def _stage(self, outcome: Outcome) -> None:
        if self.duplicates.early_waiters:
            outcome.waiters.extend(self.duplicates.waiters_for(outcome.request_id))
        self._staged.put(outcome)
        self._idle.clear()
        self._wake.set()

    def _stage_rejection(
        self,
        request_id: str,
        wal_seq: int,
        reply_to: str | None,
        encoding: Encoding,
        err: OBusError,
        msg: Msg,
        accepted_ns: int,
    ) -> None:
        self.dead_letters.reject(self.name, request_id, err, msg.data, msg.headers, wal_seq)
        reply = error_reply_from(self.name, request_id, err)
        headers = outcome_headers(request_id, wal_seq, "rejected", err.code, err.message)
        self._stage_without_event(
            request_id, wal_seq, reply_to, reply, encoding, headers, accepted_ns
        )

    def _stage_without_event(
        self,
        request_id: str,
        wal_seq: int,
        reply_to: str | None,
        reply: dict[str, Any],
        encoding: Encoding,
        headers: dict[str, str],
        accepted_ns: int,
    ) -> None:
        """Stage a request that changes nothing: its outcome record is its only write."""
        record = NewEvent(b"", headers, self._outcome_subject)
        self._stage(
            Outcome(
                request_id,
                wal_seq,
                [record],
                reply_to,
                reply,
                encoding,
                self.state,
                self.seq,
                accepted_ns,
            )
        )

    async def _flush_loop(self) -> None:
        staged, wake, eventlog = self._staged, self._wake, self.log
        try:
            while True:
                await wake.wait()
                wake.clear()
                while len(staged):
                    batch = staged.take()
                    events = [event for outcome in batch for event in outcome.events]
                    if events:
                        self.guard_seq = await eventlog.append(
                            self.guard_seq,
                            events,
                            self.config.append_timeout,
                            atomic=any(len(outcome.events) > 1 for outcome in batch),
                        )
                        self.committed_stream_seq = self.guard_seq
                    last = batch[-1]
                    self.committed_state = last.state_after
                    self.committed_seq = last.seq_after
                    self.committed_wal = last.wal_seq
                    staged.done(batch)
                    await self._send_replies(batch)
                    if self.committed_seq - self.snapshotter.seq >= self.config.snapshot_every:
                        self._schedule_snapshot(self.committed_state)
                self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the flusher must never die silently
            # The log and our in-memory state may now disagree: stop serving and let the
            # host recover from the log. Unreplied requests stay in the WAL and are processed
            # after recovery; clients that retry with the same id get the original reply.
            log.error("agent %s stops: %s", self.name, err)
            staged.drain()
            self._idle.set()
            if not self.failed.done():
                self.failed.set_result(err)

    async def _send_replies(self, batch: list[Outcome]) -> None:
        publish, cache, observe = self.nc.publish, self._replies, self.metrics.observe
        now_ns = time.time_ns()
        for outcome in batch:
            reply = outcome.reply
            observe((now_ns - outcome.accepted_ns) / 1e6, not reply["ok"])
            if reply["ok"]:
                body = to_json(reply)
                cache.put(outcome.request_id, body)
                if outcome.reply_to:
                    if outcome.encoding is Encoding.JSON:
                        await publish(outcome.reply_to, body, headers=_JSON_HEADERS)
                    else:
                        await self.publish_reply(outcome.reply_to, reply, outcome.encoding)
            elif outcome.reply_to:
                await self.publish_reply(outcome.reply_to, reply, outcome.encoding)
            for waiter, encoding in outcome.waiters:
                await self.publish_reply(waiter, {**reply, "duplicate": True}, encoding)

    async def publish_reply(self, subject: str, reply: dict[str, Any], encoding: Encoding) -> None:
        headers = {"Content-Type": encoding.value, STATUS_HEADER: "ok" if reply["ok"] else "error"}
        await self.nc.publish(subject, encode(reply, encoding), headers=headers)

    # -- snapshots and status --------------------------------------------------------------

    def _schedule_snapshot(self, state: State) -> None:
        self.snapshotter.schedule(
            self.definition,
            state,
            self.committed_seq,
            self.committed_stream_seq,
            self.committed_wal,
        )

    async def _on_snapshot_request(self, msg: Msg) -> None:
        """Take a snapshot now, of the last durable state; reply with its position."""
        await self.snapshotter.wait()
        self._schedule_snapshot(self.committed_state)
        await self.snapshotter.wait()
        await msg.respond(to_json({"ok": True, "agent": self.name, "seq": self.snapshotter.seq}))

    async def _on_status_request(self, msg: Msg) -> None:
        await msg.respond(to_json(self.status()))

    def status(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "definition": self.definition.name,
            "code_version": self.definition.version,
            "lifecycle": self.lifecycle.value,
            "seq": self.committed_seq,
            "wal_seq": self.committed_wal,
            "snapshot_seq": self.snapshotter.seq,
            "pid": os.getpid(),
            "requests": self.metrics.requests,
            "errors": self.metrics.errors,
        }
