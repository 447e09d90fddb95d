"""Typed results of :class:`o_bus.Client`: frozen pydantic models of what the bus answers.

Each reply model keeps exactly the fields the wire carried (``as_wire()`` gives them back),
tolerates fields a newer server adds, and turns an error reply into the matching
:class:`~o_bus.errors.OBusError` with ``raise_for_error()``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import (
    AgentNotFoundError,
    AgentUnavailableError,
    CommandRejected,
    ErrorCode,
    InvalidRequestError,
    OBusError,
)
from o_bus.wire.reply import EventOut

__all__ = [
    "AgentState",
    "CommandReply",
    "EventOut",
    "FeedbackReply",
    "HistoryEvent",
    "QueryReply",
    "ReplyError",
]

_INVALID = frozenset(
    {
        ErrorCode.MALFORMED_REQUEST,
        ErrorCode.MISSING_ATTRIBUTE,
        ErrorCode.UNSUPPORTED_CONTENT_TYPE,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.UNKNOWN_COMMAND,
        ErrorCode.INVALID_PAYLOAD,
    }
)


class ReplyError(BaseModel):
    """The error object of a refused request: a stable ``code`` and a human ``message``."""

    model_config = ConfigDict(frozen=True, extra="allow")
    code: str = Field(description="a stable error code (see ErrorCode); kept as sent")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)

    def exception(self) -> OBusError:
        """The exception this error stands for (``OBusError`` with its code if unknown)."""
        try:
            code = ErrorCode(self.code)
        except ValueError:
            return OBusError(f"{self.code}: {self.message}", details=self.details)
        if code in _INVALID:
            return InvalidRequestError(code, self.message, details=self.details)
        if code is ErrorCode.COMMAND_REJECTED:
            return CommandRejected(self.message, details=self.details)
        if code is ErrorCode.UNKNOWN_AGENT:
            return AgentNotFoundError(self.message, details=self.details)
        if code is ErrorCode.UNAVAILABLE:
            return AgentUnavailableError(self.message, details=self.details)
        error = OBusError(self.message, details=self.details)
        error.code = code
        return error


class _Reply(BaseModel):
    # Each subclass declares ``error`` last, so a dump keeps the wire's field order.
    model_config = ConfigDict(frozen=True, extra="allow")
    ok: bool

    def as_wire(self) -> dict[str, Any]:
        """The reply as the bus sent it (only the fields it carried)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def raise_for_error(self) -> None:
        """Raise the error this reply carries, if it is an error reply."""
        if not self.ok:
            error = getattr(self, "error", None)
            raise (error or ReplyError(code="internal_error", message="no error")).exception()


class CommandReply(_Reply):
    """The reply to a command: the events it produced and the sequence reached, or an error."""

    agent: str | None = None
    request_id: str | None = None
    seq: int | None = Field(default=None, description="the agent's event-log sequence after it")
    events: tuple[EventOut, ...] = ()
    duplicate: bool = Field(default=False, description="the stored reply of an earlier same id")
    error: ReplyError | None = None


class QueryReply(_Reply):
    """The answer to a query: its ``result`` as of event ``seq``, or an error."""

    agent: str | None = None
    query: str | None = None
    seq: int | None = None
    result: Any = None
    error: ReplyError | None = None


class FeedbackReply(_Reply):
    """The feedback service's verdict: where the feedback was kept, or an error."""

    agent: str | None = None
    request_id: str | None = None
    seq: int | None = Field(default=None, description="position in the O_FEEDBACK stream")
    regression: bool = Field(default=False, description="the request joined the regression set")
    error: ReplyError | None = None


class HistoryEvent(BaseModel):
    """One event of an agent's log, with what the log records about it."""

    model_config = ConfigDict(frozen=True)
    agent: str
    seq: int = Field(description="1-based position in the agent's own event log")
    stream_seq: int
    time: str
    type: str
    version: int
    request_id: str | None
    data: Any
    code_version: str = Field(description="the definition version that wrote it")
    wal_seq: int = Field(description="the WAL sequence of the request it came from")

    def as_wire(self) -> dict[str, Any]:
        """What ``o-bus history --json`` prints for it."""
        return self.model_dump(
            mode="json",
            include={"seq", "stream_seq", "time", "type", "version", "request_id", "data"},
        )


class AgentState(BaseModel):
    """An agent's state, now or at a point of its history, and where it was rebuilt from."""

    model_config = ConfigDict(frozen=True)
    agent: str
    definition: str
    code_version: str = Field(description="the definition version that folded the events")
    live: str | None = Field(description="the deployed code version live runs (None: registered)")
    seq: int = Field(description="the last event applied")
    state: dict[str, Any]
    from_snapshot: int | None = Field(description="the snapshot's seq it started from, if any")
    replayed: int = Field(description="events folded after the snapshot")
