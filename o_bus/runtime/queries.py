"""Answering queries: request/reply on core NATS subject ``o.qry.<agent>``, outside the WAL.

Request body (JSON)::

    {"query": "recall", "params": {"text": "keys", "k": 3}, "min_seq": 12, "timeout": 5.0}

Reply (JSON, header ``O-Status: ok|error``), the shape of command replies::

    {"ok": true, "agent": "memory", "query": "recall", "seq": 12, "result": ...}
    {"ok": false, "agent": "memory", "query": "recall", "error": {"code": ..., "message": ...}}

Only the agent's active process subscribes (queue group ``o-qry``, so two processes that both
believe they are active never both answer). ``min_seq`` makes the query wait until the state
and every projection have applied that agent sequence (read-your-writes after a command).
The agent's projections are opened here too, when the agent starts serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Literal

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from o_bus.agent.context import DecisionContext
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.queries import Projection, QueryContext
from o_bus.errors import AgentUnavailableError, ErrorCode, InvalidRequestError, OBusError
from o_bus.events.model import State
from o_bus.store import layout
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import CE_ID
from o_bus.wire.reply import ErrorBody, encode_reply

__all__ = [
    "MAX_QUERY_BYTES",
    "QUERY_QUEUE",
    "QueryErrorReply",
    "QueryOkReply",
    "QueryReply",
    "QueryRequest",
    "QueryServer",
]

log = logging.getLogger(__name__)
QUERY_QUEUE: Final = "o-qry"
MAX_QUERY_BYTES: Final = 256 * 1024
MAX_WAIT: Final = 30.0


class QueryRequest(BaseModel):
    """The body of a query request on ``o.qry.<agent>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    query: str = Field(min_length=1, max_length=128, description="the query's name")
    params: dict[str, Any] = Field(default_factory=dict)
    min_seq: int = Field(
        default=0, ge=0, description="wait until the agent has applied this sequence"
    )
    timeout: float = Field(
        default=5.0, gt=0, le=MAX_WAIT, description="seconds to wait for min_seq"
    )


class QueryOkReply(BaseModel):
    """A query's answer: ``result`` is the query's own JSON value."""

    model_config = ConfigDict(frozen=True)
    ok: Literal[True] = True
    agent: str
    query: str
    seq: int = Field(description="the agent sequence of the state the answer was read from")
    result: Any


class QueryErrorReply(BaseModel):
    """A refused or failed query, with a stable error code (as in command replies)."""

    model_config = ConfigDict(frozen=True)
    ok: Literal[False] = False
    agent: str
    query: str | None = Field(description="the query's name, null if the body was unreadable")
    error: ErrorBody


QueryReply = QueryOkReply | QueryErrorReply


def query_ok(agent: str, query: str, seq: int, result: Any) -> dict[str, Any]:
    return {"ok": True, "agent": agent, "query": query, "seq": seq, "result": result}


def query_error(agent: str, query: str | None, err: OBusError) -> dict[str, Any]:
    body = {"code": err.code.value, "message": err.message, "details": err.details}
    return {"ok": False, "agent": agent, "query": query, "error": body}


class QueryServer:
    """Opens an agent's projections and answers its queries while it serves."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        definition: AgentDefinition[Any] | Callable[[], AgentDefinition[Any]],
        view: Callable[[], tuple[State, int]],
    ) -> None:
        """``definition``: the agent's code, or a function giving the code now in use (after a
        hot reload, queries are answered by the new code; projections keep the code they were
        opened with until the agent restarts)."""
        self.nc, self.js, self.agent, self.view = nc, js, agent, view
        self._definition = definition
        self.projections: dict[int, Projection] = {}
        self.unavailable: dict[int, str] = {}  # projections that failed to open, and why
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def definition(self) -> AgentDefinition[Any]:
        found = self._definition
        return found if isinstance(found, AgentDefinition) else found()

    async def start(self) -> None:
        """Open the declared projections, then subscribe (nothing to do for plain agents)."""
        for spec in self.definition.projections:
            try:
                self.projections[id(spec)] = await spec.open(
                    self.nc, self.js, self.agent, self.definition
                )
            except Exception as err:  # commands still work; queries needing it say why
                why = err.message if isinstance(err, OBusError) else f"{type(err).__name__}: {err}"
                log.error("agent %s: projection %r unavailable: %s", self.agent, spec.name, why)
                self.unavailable[id(spec)] = why
        if self.definition.queries:
            self._sub = await self.nc.subscribe(
                layout.query_subject(self.agent), queue=QUERY_QUEUE, cb=self._on_query
            )

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for projection in self.projections.values():
            try:
                await projection.close()
            except Exception:
                log.exception("closing a projection of %s failed", self.agent)
        self.projections.clear()
        self.unavailable.clear()

    async def _on_query(self, msg: Msg) -> None:
        # Never await in the callback: a query waiting for min_seq must not hold up others.
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        name: str | None = None
        asked = DecisionContext((msg.headers or {}).get(CE_ID, ""), time.time_ns())
        try:
            request = self._parse(msg.data)
            name = request.query
            reply = await self.run(request, asked)
        except OBusError as err:
            reply = query_error(self.agent, name, err)
        except Exception as err:  # a bug in a query handler must not stop the agent
            log.exception("agent %s: query %r failed", self.agent, name)
            failure = OBusError(f"query handler raised {type(err).__name__}: {err}")
            reply = query_error(self.agent, name, failure)
        if not reply["ok"]:
            log.info("agent %s: query %r refused: %s", self.agent, name, reply["error"]["message"])
        if msg.reply:
            body, headers = encode_reply(reply, Encoding.JSON)
            with contextlib.suppress(nats.errors.Error):
                await self.nc.publish(msg.reply, body, headers=headers)

    def _parse(self, body: bytes) -> QueryRequest:
        if len(body) > MAX_QUERY_BYTES:
            raise InvalidRequestError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"query body is larger than {MAX_QUERY_BYTES} bytes"
            )
        try:
            return QueryRequest.model_validate_json(body or b"{}")
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            code = (
                ErrorCode.MALFORMED_REQUEST
                if first["type"] == "json_invalid"
                else ErrorCode.INVALID_PAYLOAD
            )
            raise InvalidRequestError(code, f"bad query request: {where}: {first['msg']}") from err

    async def run(
        self, request: QueryRequest, asked: DecisionContext | None = None
    ) -> dict[str, Any]:
        """Answer one query (used by the subscription, and directly by tests and tools).
        ``asked`` (the query's id and arrival time) goes to a handler that declares a
        ``DecisionContext`` parameter; by default, now and no id."""
        definition = self.definition
        query = definition.queries.parse(self.agent, request.query, request.params)
        if request.min_seq:
            await self._wait_for(request.min_seq, request.timeout)
        state, seq = self.view()
        context = QueryContext(self.agent, state, seq, self.projections, self.unavailable)
        asked = asked or DecisionContext("", time.time_ns())
        result = await definition.queries.run(context, query, asked)
        try:
            jsonable = to_jsonable_python(result)
        except Exception as err:
            raise OBusError(
                f"query {request.query!r} returned a value that is not JSON: {err}"
            ) from err
        return query_ok(self.agent, request.query, seq, jsonable)

    async def _wait_for(self, min_seq: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.view()[1] < min_seq:
            if loop.time() >= deadline:
                raise AgentUnavailableError(
                    f"agent {self.agent!r} is at seq {self.view()[1]}, not yet {min_seq}",
                    details={"seq": self.view()[1], "min_seq": min_seq},
                )
            await asyncio.sleep(0.005)
        for projection in self.projections.values():
            await projection.wait_for(min_seq, max(deadline - loop.time(), 0.0))
        if self.unavailable:
            why = "; ".join(self.unavailable.values())
            raise AgentUnavailableError(f"agent {self.agent!r} cannot catch up: {why}")
