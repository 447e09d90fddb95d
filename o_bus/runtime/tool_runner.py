"""The tool runner: executes an agent's requested tool calls and sends each result back to the
agent as an ordinary request (``o.req.<agent>``, ``ce-type: tool_result``).

It runs beside the active worker of an agent that declares tools, never inside its ordered
request loop, so a slow tool never delays other requests. What is pending is part of the
agent's state (``ToolState.tool_calls``): on start the runner resumes every call the state
says is pending (requested, result not recorded: for example after a crash), then follows the
agent's event log for new ``tool_call_requested`` events. A call leaves the pending set only
when its result is recorded, and the result's ``ce-id`` is derived from the call id, so
re-sending it after a runner restart is recognised and recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from pydantic_core import to_json

from o_bus.agent.tool_binding import AgentTools
from o_bus.config import RuntimeConfig
from o_bus.errors import AgentUnavailableError, ErrorCode
from o_bus.requests import send
from o_bus.store import layout
from o_bus.tools.executor import Execution, ToolExecutor, _error
from o_bus.tools.records import (
    RESULT_COMMAND,
    PendingToolCall,
    ToolCallRequested,
    ToolState,
    result_request_id,
)
from o_bus.tools.spec import ToolContext
from o_bus.tracing import tracer
from o_bus.tracing.names import AGENT, TOOL, TOOL_CALL, TOOL_CALL_ID
from o_bus.wire.headers import CE_TRACEPARENT, CE_TRACESTATE, CE_TYPE
from o_bus.wire.trace_context import TraceContext

if TYPE_CHECKING:
    from o_bus.runtime.worker import AgentWorker

__all__ = ["ToolRunner", "start_tool_runner"]

log = logging.getLogger(__name__)
_REQUESTED = ToolCallRequested.event_type
_ENVELOPE_ROOM = 2048  # request bytes kept free for the command's other fields
_UNTRACED = TraceContext()


class ToolRunner:
    """Executes the tool calls of one agent instance and submits their results.

    ``tools`` gives the agent's current tool declarations, ``pending`` its live pending calls.
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        agent: str,
        tools: Callable[[], AgentTools | None],
        pending: Callable[[], Mapping[str, PendingToolCall]],
        config: RuntimeConfig | None = None,
        *,
        executor: ToolExecutor | None = None,
        max_concurrent: int = 32,
        submit_timeout: float = 5.0,
    ) -> None:
        self.nc, self.js, self.agent = nc, js, agent
        self._tools = tools  # looked up per call: a hot reload may bring other code
        self.config = config or RuntimeConfig()
        self._pending = pending
        self.executor = executor or ToolExecutor(ToolContext(nc, js, agent))
        self._slots = asyncio.Semaphore(max_concurrent)
        self.submit_timeout = submit_timeout
        self._active: dict[str, asyncio.Task[None]] = {}
        self._sub: Subscription | None = None
        self.executed = 0  # calls run to a result (cached or not), for tests and status
        self.submitted = 0
        self.tracer = tracer()  # None: tracing is off (the event's trace context is carried on)

    async def start(self, pending: Mapping[str, PendingToolCall], after_stream_seq: int) -> None:
        """Resume ``pending`` (the calls of the durable state at ``after_stream_seq``), then
        follow the log after that position."""
        for call_id, call in pending.items():
            self._launch(call_id, call.tool, call.input)
        try:
            self._sub = await self.js.subscribe(
                layout.event_subject(self.agent),
                stream=layout.events_stream(self.agent),
                cb=self._on_event,
                ordered_consumer=True,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=after_stream_seq + 1,
                ),
                pending_msgs_limit=65536,
            )
        except nats.errors.Error:
            await self.stop()
            raise
        if pending:
            log.info("agent %s: resumed %d pending tool call(s)", self.agent, len(pending))

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        tasks = list(self._active.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on_event(self, msg: Msg) -> None:
        headers = msg.headers or {}
        if headers.get(CE_TYPE) != _REQUESTED:
            return
        try:
            requested = ToolCallRequested.model_validate_json(msg.data)
        except ValidationError:
            log.error("agent %s: unreadable tool call event; skipped", self.agent)
            return
        # Still pending in the live state? (A result may already be recorded, e.g. when the
        # log is read again after a consumer reset.)
        if requested.call_id in self._pending():
            trace = TraceContext(headers.get(CE_TRACEPARENT), headers.get(CE_TRACESTATE))
            self._launch(requested.call_id, requested.tool, requested.input, trace)

    def _launch(
        self, call_id: str, tool: str, data: dict[str, Any], trace: TraceContext = _UNTRACED
    ) -> None:
        """Run a call; ``trace``: the context of the decision that requested it (a call
        resumed after a restart has none and starts its own trace when tracing is on)."""
        if call_id in self._active:
            return
        task = asyncio.create_task(self._run(call_id, tool, data, trace), name=f"tool-{call_id}")
        self._active[call_id] = task
        task.add_done_callback(lambda _: self._active.pop(call_id, None))

    async def _run(
        self, call_id: str, tool_name: str, data: dict[str, Any], trace: TraceContext
    ) -> None:
        if self.tracer is None:
            await self._execute(call_id, tool_name, data, trace)
            return
        span = self.tracer.start(
            TOOL_CALL,
            trace.traceparent,
            trace.tracestate,
            kind="client",
            attributes={AGENT: self.agent, TOOL: tool_name, TOOL_CALL_ID: call_id},
        )
        try:
            execution = await self._execute(
                call_id, tool_name, data, TraceContext(span.traceparent, span.tracestate)
            )
            span.set("o_bus.tool_ok", execution.ok)
            if execution.error is not None:
                span.fail(f"{execution.error.code}: {execution.error.message}")
        finally:
            span.end()

    async def _execute(
        self, call_id: str, tool_name: str, data: dict[str, Any], trace: TraceContext
    ) -> Execution:
        async with self._slots:
            binding = self._tools()
            declared = binding.tools.get(tool_name) if binding is not None else None
            if declared is None:
                execution = Execution(
                    None,
                    _error("unknown_tool", f"agent {self.agent!r} has no tool {tool_name!r}"),
                    False,
                    0,
                    0.0,
                )
            else:
                execution = await self.executor.execute(declared, data, call_id)
            self.executed += 1
        await self._submit(call_id, tool_name, execution, trace)
        return execution

    def _result_body(self, call_id: str, tool: str, execution: Execution) -> dict[str, Any]:
        body = {
            "call_id": call_id,
            "tool": tool,
            "ok": execution.ok,
            "output": execution.output,
            "error": execution.error.model_dump() if execution.error else None,
            "cached": execution.cached,
            "attempts": execution.attempts,
            "duration_ms": execution.duration_ms,
        }
        size = len(to_json(body))
        limit = self.config.max_request_bytes - _ENVELOPE_ROOM
        if size > limit:
            error = _error(
                "output_too_large",
                f"the result of tool {tool!r} is {size} bytes; requests to an agent are limited "
                f"to {limit} (max_request_bytes)",
            )
            body.update(ok=False, output=None, error=error.model_dump())
        return body

    async def _submit(
        self, call_id: str, tool: str, execution: Execution, trace: TraceContext
    ) -> None:
        """Send the result until the agent has answered it; the same ``ce-id`` every time,
        in the trace of the call."""
        body = self._result_body(call_id, tool, execution)
        delay = 0.1
        while True:
            try:
                reply = await send(
                    self.nc,
                    self.agent,
                    RESULT_COMMAND,
                    body,
                    request_id=result_request_id(call_id),
                    timeout=self.submit_timeout,
                    source=f"o-bus/tools/{self.agent}",
                    traceparent=trace.traceparent,
                    tracestate=trace.tracestate,
                )
            except AgentUnavailableError as err:
                reply = {"ok": False, "error": {"code": ErrorCode.UNAVAILABLE, "message": str(err)}}
            if reply.get("ok"):
                self.submitted += 1
                return
            error = reply.get("error") or {}
            if error.get("code") != ErrorCode.UNAVAILABLE:
                # Recorded already, or refused for good: either way nothing more to send.
                level = (
                    logging.DEBUG
                    if error.get("code") == ErrorCode.COMMAND_REJECTED
                    else logging.ERROR
                )
                log.log(
                    level,
                    "agent %s: result of tool call %s not recorded: %s",
                    self.agent,
                    call_id,
                    error.get("message"),
                )
                return
            log.warning(
                "agent %s: result of tool call %s not delivered (%s); again in %.1fs",
                self.agent,
                call_id,
                error.get("message"),
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def start_tool_runner(
    worker: AgentWorker, config: RuntimeConfig, *, executor: ToolExecutor | None = None
) -> ToolRunner | None:
    """Start the runner of a started worker's agent, or return None if it declares no tools
    or ``config.run_tools`` is off (shadow and candidate processes)."""
    tools: AgentTools | None = getattr(worker.definition, "tools", None)
    if tools is None or not config.run_tools:
        return None

    def live_pending() -> Mapping[str, PendingToolCall]:
        state = worker.state
        return state.tool_calls if isinstance(state, ToolState) else {}

    def live_tools() -> AgentTools | None:
        found: AgentTools | None = getattr(worker.definition, "tools", None)
        return found

    runner = ToolRunner(
        worker.nc, worker.js, worker.name, live_tools, live_pending, config, executor=executor
    )
    # Read together, with no await between: the durable state and the position it covers.
    durable = worker.committed_state
    position = worker.committed_stream_seq
    await runner.start(durable.tool_calls if isinstance(durable, ToolState) else {}, position)
    return runner
