"""The tools of one agent definition: how handlers ask for calls and get results back.

``agent.use_tools(...)`` creates an :class:`AgentTools`. It registers on the definition the
built-in ``tool_result`` command and the appliers of the two tool events, which keep
``ToolState.tool_calls`` (the pending calls) current. Everything here is pure: handlers only
return events, the runner does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from o_bus.errors import CommandRejected, ConfigurationError, ErrorCode, InvalidRequestError
from o_bus.events.model import Event
from o_bus.tools.records import (
    PendingToolCall,
    ToolCallCompleted,
    ToolCallRequested,
    ToolResult,
    ToolResultCommand,
    ToolState,
)
from o_bus.tools.spec import Tool
from o_bus.tools.validation import validation_summary

if TYPE_CHECKING:
    from o_bus.agent.definition import AgentDefinition

__all__ = ["AgentTools", "Continuation"]

TS = TypeVar("TS", bound=ToolState)
Continuation = Callable[[Any, ToolResult], Event | Sequence[Event] | None]


class AgentTools:
    """The tools an agent declared, its continuation handlers, and call construction."""

    def __init__(self, definition: AgentDefinition[Any], tools: Iterable[Tool]) -> None:
        if not issubclass(definition.state_type, ToolState):
            raise ConfigurationError(
                f"agent {definition.name!r} uses tools: its state must subclass "
                "o_bus.tools.ToolState (which keeps the pending calls)"
            )
        self.definition = definition
        self.tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self.tools:
                raise ConfigurationError(f"tool {item.name!r} declared twice")
            self.tools[item.name] = item
        self._continuations: dict[str, Continuation] = {}
        definition.command(self._record_result)
        definition.applies(_apply_requested)
        definition.applies(_apply_completed)

    def get(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise ConfigurationError(
                f"agent {self.definition.name!r} declares no tool {name!r}; "
                f"declared: {', '.join(sorted(self.tools)) or 'none'}"
            ) from None

    def on_result(self, tool: str) -> Callable[[Continuation], Continuation]:
        """Register ``(state, ToolResult) -> events`` run when a call of ``tool`` completes.

        It runs in the same decision as the recorded result, on the state after it."""
        self.get(tool)

        def register(fn: Continuation) -> Continuation:
            if tool in self._continuations:
                raise ConfigurationError(f"tool {tool!r} has two result handlers")
            self._continuations[tool] = fn
            return fn

        return register

    def call(
        self, state: ToolState, tool: str, data: BaseModel | dict[str, Any]
    ) -> ToolCallRequested:
        """The event asking for one call; see :meth:`calls`."""
        return self.calls(state, [(tool, data)])[0]

    def calls(
        self, state: ToolState, requests: Sequence[tuple[str, BaseModel | dict[str, Any]]]
    ) -> list[ToolCallRequested]:
        """Events asking for several calls, for a handler to return (with any others).

        Inputs are validated now: invalid input raises ``InvalidRequestError``
        (``invalid_payload``), so the request that caused it is refused with the reason. Call
        ids follow the state's counter, so re-running the handler gives the same ids.
        """
        out = []
        for offset, (name, data) in enumerate(requests, 1):
            declared = self.get(name)
            raw = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
            try:
                valid = declared.input.model_validate(raw)
            except ValidationError as err:
                summary, details = validation_summary(err)
                raise InvalidRequestError(
                    ErrorCode.INVALID_PAYLOAD,
                    f"invalid input for tool {name!r}: {summary}",
                    details={"tool": name, "errors": details},
                ) from err
            out.append(
                ToolCallRequested(
                    call_id=f"call-{state.tool_call_seq + offset}",
                    tool=name,
                    input=valid.model_dump(mode="json"),
                )
            )
        return out

    # -- the built-in command ----------------------------------------------------------------

    def _record_result(self, state: ToolState, cmd: ToolResultCommand) -> list[Event]:
        pending = state.tool_calls.get(cmd.call_id)
        if pending is None:
            raise CommandRejected(
                f"tool call {cmd.call_id!r} is not pending (unknown, or its result is recorded)"
            )
        if pending.tool != cmd.tool:
            raise CommandRejected(f"tool call {cmd.call_id!r} is a call of {pending.tool!r}")
        output_model = None
        if cmd.ok:
            declared = self.get(cmd.tool)
            try:
                output_model = declared.output.model_validate(cmd.output or {})
            except ValidationError as err:
                summary, details = validation_summary(err)
                raise InvalidRequestError(
                    ErrorCode.INVALID_PAYLOAD,
                    f"output of tool {cmd.tool!r} does not fit its model: {summary}",
                    details={"tool": cmd.tool, "errors": details},
                ) from err
        completed = ToolCallCompleted(
            call_id=cmd.call_id,
            tool=cmd.tool,
            ok=cmd.ok,
            output=output_model.model_dump(mode="json") if output_model is not None else None,
            error=None if cmd.ok else cmd.error,
            cached=cmd.cached,
            attempts=cmd.attempts,
            duration_ms=cmd.duration_ms,
        )
        continuation = self._continuations.get(cmd.tool)
        if continuation is None:
            return [completed]
        after = self.definition.apply(state, completed)
        result = ToolResult(
            call_id=cmd.call_id,
            tool=cmd.tool,
            input=pending.input,
            ok=cmd.ok,
            output=output_model,
            error=completed.error,
            cached=cmd.cached,
            attempts=cmd.attempts,
        )
        try:
            more = continuation(after, result)
        except CommandRejected:
            return [completed]  # the continuation declined: the result is still recorded
        if more is None:
            return [completed]
        if isinstance(more, Event):
            return [completed, more]
        return [completed, *more]


def _apply_requested(state: ToolState, event: ToolCallRequested) -> ToolState:
    if event.call_id in state.tool_calls:
        raise CommandRejected(
            f"tool call {event.call_id!r} is already pending: ask for several calls in one "
            "handler with tools.calls(state, [...])"
        )
    pending = {
        **state.tool_calls,
        event.call_id: PendingToolCall(tool=event.tool, input=event.input),
    }
    return state.model_copy(
        update={"tool_calls": pending, "tool_call_seq": state.tool_call_seq + 1}
    )


def _apply_completed(state: ToolState, event: ToolCallCompleted) -> ToolState:
    pending = {k: v for k, v in state.tool_calls.items() if k != event.call_id}
    return state.model_copy(update={"tool_calls": pending})
