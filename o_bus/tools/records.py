"""What tool calls leave in an agent's history: the request, the result, the pending set.

A handler asks for a call by returning :class:`ToolCallRequested`; the tool runner executes it
and sends a ``tool_result`` command (:class:`ToolResultCommand`) back through the agent's
ordinary request path; the built-in handler records it as :class:`ToolCallCompleted`. Replay
applies these events and never calls a tool again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from o_bus.events.model import Command, Event, State

__all__ = [
    "MAX_ERROR_MESSAGE",
    "RESULT_COMMAND",
    "PendingToolCall",
    "ToolCallCompleted",
    "ToolCallRequested",
    "ToolError",
    "ToolErrorCode",
    "ToolResult",
    "ToolResultCommand",
    "ToolState",
    "result_request_id",
]

RESULT_COMMAND = "tool_result"
MAX_ERROR_MESSAGE = 1000
ToolErrorCode = Literal[
    "timeout",  # an attempt took longer than the tool's timeout
    "tool_failed",  # the tool raised
    "invalid_input",  # the recorded input no longer fits the tool's input model
    "invalid_output",  # the tool returned something its output model refuses
    "output_too_large",  # the output is larger than the tool (or the request path) allows
    "unknown_tool",  # the runner's code has no tool of that name
    "not_configured",  # an optional tool (the language model) has no settings
]


class ToolError(BaseModel):
    """Why a call failed, after its last attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: ToolErrorCode
    message: str = Field(max_length=MAX_ERROR_MESSAGE)
    retryable: bool = False


class PendingToolCall(BaseModel):
    """A requested call whose result is not recorded yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tool: str
    input: dict[str, Any]


class ToolState(State):
    """Base of the state of an agent that calls tools: the calls still waiting for a result.

    Part of the state, so snapshots, recovery, forks and standbys all know what is pending.
    """

    tool_calls: dict[str, PendingToolCall] = {}
    tool_call_seq: int = 0


class ToolCallRequested(Event):
    """A handler asked for a call; ``input`` is already valid for the tool's input model."""

    call_id: str
    tool: str
    input: dict[str, Any]


class ToolCallCompleted(Event):
    """The recorded result of a call: its output, or the error of its last attempt."""

    call_id: str
    tool: str
    ok: bool
    output: dict[str, Any] | None = None
    error: ToolError | None = None
    cached: bool = False
    attempts: int = 0
    duration_ms: float = 0.0


class ToolResultCommand(Command):
    """Sent by the tool runner (``ce-type: tool_result``); the handler records it."""

    command_name = RESULT_COMMAND
    call_id: str = Field(min_length=1, max_length=128)
    tool: str = Field(min_length=1, max_length=128)
    ok: bool
    output: dict[str, Any] | None = None
    error: ToolError | None = None
    cached: bool = False
    attempts: int = Field(0, ge=0)
    duration_ms: float = Field(0.0, ge=0)


class ToolResult(BaseModel):
    """What a continuation handler receives: the call and its validated outcome."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    call_id: str
    tool: str
    input: dict[str, Any]
    ok: bool
    output: Any = None  # an instance of the tool's output model when ok
    error: ToolError | None = None
    cached: bool = False
    attempts: int = 0


def result_request_id(call_id: str) -> str:
    """The ``ce-id`` of a call's result: one per call, so the WAL records it once."""
    return f"tool-result:{call_id}"
