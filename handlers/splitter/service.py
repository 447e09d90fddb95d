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
from typing import Any

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
    StorageError,
)
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.registry import Registry
from o_bus.wire.cloudevents import RequestEnvelope, parse_request, reply_encoding_of
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import CE_ID
from o_bus.wire.reply import encode_reply, error_reply_from
from o_bus.wire.wal_record import DuplicateQuery

from .canary import goes_to_canary
from .routes import RouteTable
from .tracing import wal_writer
from .wal_writer import AckProblem

__all__ = ["QUEUE_GROUP", "Splitter"]

log = logging.getLogger(__name__)
QUEUE_GROUP = "o-splitter"
_PREFIX_LEN = len(layout.REQUEST_PREFIX)


class Splitter:
    def __init__(
        self, nc: Client, js: JetStreamContext, config: RuntimeConfig | None = None
    ) -> None:
        self.nc, self.js = nc, js
        self.config = config or RuntimeConfig()
        self.routes = RouteTable()
        self.dead_letters = DeadLetters(js)
        self.wal = wal_writer(nc, self._on_wal_problem)  # traced when tracing is on
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.wal.start()
        await self.routes.follow(Registry(self.js))
        self._sub = await self.nc.subscribe(
            layout.REQUEST_WILDCARD,
            queue=QUEUE_GROUP,
            cb=self._on_request,
            pending_msgs_limit=65536,
        )
        log.info("splitter serving %s", layout.REQUEST_WILDCARD)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.drain()  # type: ignore[no-untyped-call]
        await self.wal.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dead_letters.flush()
        await self.routes.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_request(self, msg: Msg) -> None:
        agent = msg.subject[_PREFIX_LEN:]
        try:
            envelope = self._admit(agent, msg)
        except OBusError as err:
            headers = msg.headers
            request_id = headers.get(CE_ID) if headers else None
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
        await self.wal.append(
            layout.WAL_PREFIX + agent, envelope.data, headers, (agent, envelope, msg.reply)
        )

    def _admit(self, agent: str, msg: Msg) -> RequestEnvelope:
        size = len(msg.data)
        if size > self.config.max_request_bytes:
            raise InvalidRequestError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"request body is {size} bytes; the limit is {self.config.max_request_bytes}",
                details={"size": size, "limit": self.config.max_request_bytes},
            )
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

    def _on_wal_problem(
        self, context: tuple[str, RequestEnvelope, str], problem: AckProblem
    ) -> None:
        agent, envelope, reply = context
        if problem.duplicate_of:
            if reply:
                self._spawn(self._ask_duplicate(agent, envelope, reply, problem.duplicate_of))
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
