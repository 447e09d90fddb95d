"""The live agent's side of a canary: ask the candidate process to decide a request.

The live worker stays the only writer of the agent's log. For a request the splitter marked
for the canary, it sends the current state and the raw command to the candidate (in its
sandboxed process), checks that the events it gets back can be read by the live code (so a
rollback can still replay them), and folds them. If the candidate is slow, crashes, or
answers something unusable, the live code decides instead: the client never sees a failure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgpack
import nats.errors
from nats.aio.client import Client
from pydantic_core import from_json, to_json

from o_bus.agent.definition import AgentDefinition, Decision
from o_bus.decision.decider import Decided
from o_bus.errors import (
    CommandRejected,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
    OBusError,
)
from o_bus.events.model import Event, State
from o_bus.store import layout
from o_bus.tracing import tracer
from o_bus.tracing.names import AGENT, CANARY_DECIDE, CODE_VERSION, OUTCOME, REQUEST_ID
from o_bus.wire.codec import Encoding
from o_bus.wire.wal_record import WalRecord

__all__ = ["CanaryClient", "encode_canary_request"]

log = logging.getLogger(__name__)


def encode_canary_request(state: State, schema_version: int, request: WalRecord) -> bytes:
    """What the candidate's canary service needs to decide ``request`` as live would: the
    state, the record's command, data, content type, id and the time the WAL accepted it."""
    return msgpack.packb(  # type: ignore[no-any-return]
        {
            "state": state.model_dump(mode="json"),
            "schema": schema_version,
            "command": request.command,
            "content_type": request.content_type or Encoding.JSON.value,
            "data": request.data,
            "request_id": request.request_id,
            "accepted_ns": request.accepted_ns,
            "wal_seq": request.wal_seq,
        }
    )


class CanaryClient:
    def __init__(
        self,
        nc: Client,
        agent: str,
        version: str,
        live: AgentDefinition[Any],
        timeout: float,
        cooldown: float = 2.0,
    ) -> None:
        self.nc, self.version, self.live, self.timeout = nc, version, live, timeout
        self.subject = layout.candidate_subject(agent, version, "decide")
        self.decided = 0
        self.fallbacks = 0
        self.cooldown = cooldown
        self._resting_until = 0.0  # after a failure, live decides alone for a while
        self.tracer = tracer()  # None: tracing is off

    async def decide(self, state: State, record: WalRecord) -> Decided | None:
        """The candidate's decision, or None: let the live code decide.

        A candidate that just failed is left alone for ``cooldown`` seconds, so a hung or
        crashed candidate costs live at most one timeout until the arbiter rolls it back."""
        if self.tracer is None:
            return await self._decide(state, record)
        span = self.tracer.start(
            CANARY_DECIDE,
            record.traceparent,
            record.tracestate,
            kind="client",
            attributes={
                AGENT: self.live.name,
                CODE_VERSION: self.version,
                REQUEST_ID: record.request_id,
            },
        )
        decided = await self._decide(state, record)
        span.set(OUTCOME, "fallback to live" if decided is None else "decided")
        if decided is None:
            span.fail("the canary did not decide; live decided instead")
        span.end()
        return decided

    async def _decide(self, state: State, record: WalRecord) -> Decided | None:
        if self._resting_until and time.monotonic() < self._resting_until:
            self.fallbacks += 1
            return None
        request = encode_canary_request(state, self.live.state_schema_version, record)
        started = time.perf_counter()
        try:
            msg = await self.nc.request(self.subject, request, timeout=self.timeout)
            reply = from_json(msg.data)
            result = self._result_of(state, reply)
        except (nats.errors.Error, ValueError, KeyError, TypeError, OBusError) as err:
            self.fallbacks += 1
            self._resting_until = time.monotonic() + self.cooldown
            log.warning(
                "canary %s of %s could not decide (%s: %s) after %.0f ms; live decides",
                self.version[:19],
                self.live.name,
                type(err).__name__,
                err,
                (time.perf_counter() - started) * 1000,
            )
            return None
        self.decided += 1
        return result

    def _result_of(self, state: State, reply: dict[str, Any]) -> Decided:
        if not reply.get("ok"):
            if reply.get("outcome") != "rejected":
                raise OBusError(f"candidate failed: {reply.get('message')}")
            code = ErrorCode(reply.get("code", ErrorCode.COMMAND_REJECTED))
            rejection = _rejection(code, str(reply.get("message", "")))
            return Decided(None, rejection, str(reply["code_version"]))
        events: list[Event] = []
        for item in reply["events"]:
            try:
                event = self.live.decode_event(
                    item["type"], int(item["version"]), to_json(item["data"])
                )
            except ConfigurationError as err:
                raise OBusError(
                    f"the live code cannot read the candidate's event {item['type']!r} "
                    "(a rollback could not replay it)"
                ) from err
            events.append(event)
        decision = Decision(events, self.live.fold(state, events))
        return Decided(decision, None, str(reply["code_version"]))


def _rejection(code: ErrorCode, message: str) -> OBusError:
    if code is ErrorCode.COMMAND_REJECTED:
        return CommandRejected(message)
    return InvalidRequestError(code, message)
