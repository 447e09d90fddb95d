"""The traffic splitter: the entry point of every request (``o.req.<agent>``).

It validates the envelope, writes the request into the WAL (``Nats-Msg-Id`` = agent + request
id, so a re-send is recognised), and leaves the reply to the agent, which answers the client
directly. Writes are pipelined: the callback never waits for an acknowledgement.
When an agent has a canary, the splitter marks the chosen requests with the canary's code
version (header ``O-Route``); the agent asks the candidate to decide those. Shadows need no
copy from the splitter: they read the same WAL records the live agent reads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from o_bus.config import RuntimeConfig
from o_bus.errors import (
    AgentUnavailableError,
    ErrorCode,
    InvalidRequestError,
    OBusError,
    OverloadedError,
    StorageError,
)
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.registry import Registry
from o_bus.wire.cloudevents import (
    RequestEnvelope,
    parse_request,
    reply_encoding_of,
    request_id_of,
)
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import CE_ID, CE_SOURCE
from o_bus.wire.reply import encode_reply, error_reply_from
from o_bus.wire.wal_record import DuplicateQuery

from .admission import Admission, Limits
from .canary import goes_to_canary
from .early_refusal import IntakeParser
from .fair_queue import FairQueue
from .overload import Refusals, follow_progress, overloaded, wal_is_full
from .routes import RouteTable
from .sizes import check_sizes
from .tracing import wal_writer
from .wal_writer import AckProblem

__all__ = ["QUEUE_GROUP", "Splitter"]

log = logging.getLogger(__name__)
QUEUE_GROUP = "o-splitter"
_PREFIX_LEN = len(layout.REQUEST_PREFIX)
_READ_QUEUE = 65536
_READ_QUEUE_BYTES = 256 * 1024 * 1024


class _Queued(NamedTuple):
    """A request in the intake queue: ``admitted`` when it counts against ``sender``'s share."""

    msg: Msg
    sender: str
    admitted: bool


class Splitter:
    def __init__(
        self, nc: Client, js: JetStreamContext, config: RuntimeConfig | None = None
    ) -> None:
        self.nc, self.js = nc, js
        self.config = config or RuntimeConfig()
        self.routes = RouteTable()
        self.dead_letters = DeadLetters(js)
        self.wal = wal_writer(  # traced when tracing is on
            nc,
            self._on_wal_problem,
            on_stored=self._on_wal_stored,
            max_pending=self.config.intake_in_flight,
        )
        self.admission = Admission(
            Limits(
                self.config.intake_per_agent,
                self.config.intake_per_sender,
                self.config.intake_contended_share,
            )
        )
        self.refusals = Refusals(nc)
        self.accepted = 0  # requests the WAL stored (not duplicates)
        self.queue: FairQueue[_Queued] = FairQueue(
            self.config.intake_queue_per_sender, self.config.intake_queue
        )
        self._worker: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._progress: tuple[Subscription, Subscription] | None = None
        self._intake: IntakeParser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.wal.start()
        await self.routes.follow(Registry(self.js))
        self._progress = await follow_progress(self.nc, self.admission.processed)
        self._worker = asyncio.create_task(self._serve(), name="splitter-intake")
        self.refusals.on_slow_consumer(
            self.nc, lambda: self._sub, _READ_QUEUE, on_trouble=self.routes.refollow_soon
        )
        self._intake = IntakeParser.install(
            self.nc, _PREFIX_LEN, self._unanswerable_refusal, self.refusals.dropped
        )
        self._sub = await self.nc.subscribe(
            layout.REQUEST_WILDCARD,
            queue=QUEUE_GROUP,
            cb=self._on_request,
            # Requests reach the intake as they are read (below), not through the client's
            # queue; while the splitter stops, they come through it. Set on purpose, not the
            # client's defaults: what does not fit is answered by the slow-consumer hook.
            pending_msgs_limit=_READ_QUEUE,
            pending_bytes_limit=_READ_QUEUE_BYTES,
        )
        self._intake.watch(self._sub._id, self._take_in)
        log.info("splitter serving %s", layout.REQUEST_WILDCARD)

    async def stop(self) -> None:
        if self._intake is not None:
            self._intake.unwatch()
        if self._sub is not None:
            await self._sub.drain()  # type: ignore[no-untyped-call]
        await self.queue.empty()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for progress in self._progress or ():
            await progress.unsubscribe()
        await self.wal.stop()
        self.refusals.report(force=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dead_letters.flush()
        await self.routes.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_request(self, msg: Msg) -> None:
        self._take_in(msg)

    def _take_in(self, msg: Msg) -> None:
        """Admit the request and sort it into its sender's queue, or refuse it unread. From
        here until the agent has processed it (or it is turned down) it counts against its
        sender's share of the agent, so a flood is held to that share even before anything
        of it has reached the WAL."""
        headers = msg.headers
        sender = headers.get(CE_SOURCE, "") if headers else ""
        agent = msg.subject[_PREFIX_LEN:]
        scope: str | None = self.admission.refusal(agent, sender)
        if scope is not None:
            err = self._overloaded_by(scope, agent, sender)
        else:
            scope = self.queue.refusal(sender)
            if scope is None:
                # Only a registered agent is counted: its name came from the sender.
                admitted = agent in self.routes.commands
                if admitted:
                    self.admission.admit(agent, sender)
                self.queue.offer(sender, _Queued(msg, sender, admitted))
                return
            limit = self.queue.total if scope == "queue" else self.queue.per_key
            err = overloaded(scope, limit, agent=agent, sender=sender)
        if not msg.reply:
            self.refusals.dropped(scope)
            return
        request_id = headers.get(CE_ID) if headers else None
        self._spawn(
            self.refusals.refuse(agent, request_id, msg.reply, err, reply_encoding_of(headers))
        )

    def _unanswerable_refusal(self, agent: str, sender: str) -> str | None:
        """Why a request sent without a reply subject is dropped unread, or None. A flood is
        mostly this: what admission or the sender's full queue would refuse anyway is
        refused before any parsing and counted; nothing more can be done for it."""
        return self.admission.refusal(agent, sender) or self.queue.refusal(sender)

    async def _serve(self) -> None:
        while True:
            queued = await self.queue.take()
            try:
                await self._handle(queued)
            except Exception:
                log.exception("request on %s not handled", queued.msg.subject)

    async def _handle(self, queued: _Queued) -> None:
        msg = queued.msg
        agent = msg.subject[_PREFIX_LEN:]
        try:
            envelope = self._admit(agent, msg)
            if self.wal.full:
                raise overloaded("bus", self.wal.max_pending)
        except OverloadedError as err:
            self._turned_down(agent, queued)
            await self.refusals.refuse(
                agent, envelope.id, msg.reply or None, err, envelope.reply_encoding
            )
            return
        except OBusError as err:
            self._turned_down(agent, queued)
            headers = msg.headers
            request_id = request_id_of(headers, msg.data, self.config.max_request_bytes)
            known = agent if agent in self.routes.agents else None
            self.dead_letters.reject(known, request_id, err, msg.data, headers)
            await self._reply(
                msg.reply,
                error_reply_from(agent, request_id[:256] if request_id else None, err),
                reply_encoding_of(headers),
            )
            return
        route: str | None = None
        if self.routes.canaries:
            canary = self.routes.canaries.get(agent)
            if canary is not None and goes_to_canary(canary, envelope, msg.headers):
                route = canary.version
        headers = envelope.wal_record(msg.reply, route).to_headers(f"{agent}:{envelope.id}")
        # From here it counts as the envelope's source (the same, unless the request came
        # in structured mode), and until the agent has processed it or the append failed.
        if queued.sender != envelope.source or not queued.admitted:
            self._turned_down(agent, queued)
            self.admission.admit(agent, envelope.source)
        await self.wal.append(
            layout.WAL_PREFIX + agent, envelope.data, headers, (agent, envelope, msg.reply)
        )

    def _turned_down(self, agent: str, queued: _Queued) -> None:
        """A request admitted at intake goes no further: it no longer counts."""
        if queued.admitted:
            self.admission.not_stored(agent, queued.sender)

    def _admit(self, agent: str, msg: Msg) -> RequestEnvelope:
        check_sizes(msg.data, msg.headers, self.config)
        commands = self.routes.commands.get(agent)
        if commands is None:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_AGENT, f"no agent named {agent!r} is registered"
            )
        failure = self.routes.failed.get(agent)
        if failure is not None:
            raise AgentUnavailableError(
                f"agent {agent!r} has failed and is not restarted: {failure}. "
                f"Fix it, then run `o-bus reset {agent}`",
                details={"reason": failure},
            )
        envelope = parse_request(msg.headers, msg.data)
        if commands and envelope.type not in commands:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_COMMAND,
                f"agent {agent!r} has no command {envelope.type!r}; "
                f"known: {', '.join(sorted(commands))}",
            )
        return envelope

    def _overloaded_by(self, scope: str, agent: str, sender: str) -> OverloadedError:
        limits = self.admission.limits
        if scope == "agent":
            return overloaded(scope, limits.per_agent, agent=agent)
        return overloaded(scope, limits.contended_share, sender=sender)

    def _on_wal_stored(self, context: tuple[str, RequestEnvelope, str], wal_seq: int) -> None:
        agent, envelope, _ = context
        self.accepted += 1
        self.admission.stored(agent, envelope.source, wal_seq)

    def figures(self) -> dict[str, Any]:
        """What the intake did so far: accepted, refused by scope (``<scope>/dropped``: sent
        without a reply subject), dead letters not written, and what waits now."""
        return {
            "accepted": self.accepted,
            "refused": dict(self.refusals.total),
            "dead_letters_not_written": self.dead_letters.not_written,
            "waiting_for_wal": self.wal.pending,
            "outstanding": self.admission.outstanding_by_agent(),
        }

    def _on_wal_problem(
        self, context: tuple[str, RequestEnvelope, str], problem: AckProblem
    ) -> None:
        agent, envelope, reply = context
        self.admission.not_stored(agent, envelope.source)
        if problem.duplicate_of:
            if reply:
                self._spawn(self._ask_duplicate(agent, envelope, reply, problem.duplicate_of))
            return
        if wal_is_full(problem.error):
            err = overloaded("wal", "its size limit", agent=agent)
            self._spawn(
                self.refusals.refuse(agent, envelope.id, reply, err, envelope.reply_encoding)
            )
            return
        log.error("WAL append for %s request %r failed: %s", agent, envelope.id, problem.error)
        failure = StorageError(f"the request could not be written to the WAL: {problem.error}")
        self._spawn(
            self._reply(
                reply, error_reply_from(agent, envelope.id, failure), envelope.reply_encoding
            )
        )

    async def _ask_duplicate(
        self, agent: str, envelope: RequestEnvelope, reply: str, wal_seq: int
    ) -> None:
        query = DuplicateQuery(envelope.id, wal_seq, envelope.reply_encoding)
        await self.nc.publish(
            layout.control_subject(agent, "dup"), b"", reply=reply, headers=query.to_headers()
        )

    async def _reply(self, reply: str | None, body: dict[str, Any], encoding: Encoding) -> None:
        if not reply:
            return
        data, headers = encode_reply(body, encoding)
        try:
            await self.nc.publish(reply, data, headers=headers)
        except nats.errors.Error:
            log.exception("could not send an error reply")
