"""The exception hierarchy: one root, a few precise subclasses.

Every error that reaches a client over the wire carries a stable ``code``
(see :class:`ErrorCode`); exceptions map to codes through ``code``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "AgentCodeError",
    "AgentNotFoundError",
    "AgentUnavailableError",
    "CodeVersionNotFoundError",
    "CommandRejected",
    "ConcurrencyError",
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "ErrorCode",
    "EvolutionNotFoundError",
    "InvalidRequestError",
    "NotFoundError",
    "OBusError",
    "OverloadedError",
    "RequestTimeoutError",
    "SnapshotError",
    "StorageError",
    "UntrustedCodeError",
]


class ErrorCode(StrEnum):
    """Stable error codes sent to clients. Never rename one; add new ones."""

    MALFORMED_REQUEST = "malformed_request"
    MISSING_ATTRIBUTE = "missing_attribute"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID_PAYLOAD = "invalid_payload"
    COMMAND_REJECTED = "command_rejected"
    CONCURRENCY_CONFLICT = "concurrency_conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"
    UNKNOWN_CODE_VERSION = "unknown_code_version"
    UNKNOWN_EVOLUTION = "unknown_evolution"
    OVERLOADED = "overloaded"
    UNKNOWN_DEAD_LETTER = "unknown_dead_letter"


class OBusError(Exception):
    """Root of every error raised by o_bus."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequestError(OBusError):
    """The request cannot be accepted as sent; ``code`` says why."""

    def __init__(
        self, code: ErrorCode, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.code = code


class CommandRejected(OBusError):
    """Raised by a command handler: the command is valid but not allowed in this state."""

    code = ErrorCode.COMMAND_REJECTED


class ConcurrencyError(OBusError):
    """Another writer appended to the agent's event log first (optimistic concurrency)."""

    code = ErrorCode.CONCURRENCY_CONFLICT

    def __init__(self, agent: str, expected_last: int, message: str | None = None) -> None:
        super().__init__(
            message or f"event log of {agent!r} moved past stream sequence {expected_last}",
            details={"agent": agent, "expected_last_subject_sequence": expected_last},
        )
        self.agent = agent
        self.expected_last = expected_last


class AgentCodeError(OBusError):
    """Agent code broke its definition's contract (a handler returned an event that has no
    applier): a bug to fix, not a refusal, so its code is ``internal_error``."""


class NotFoundError(OBusError):
    """Something that was asked for does not exist; each subclass names what, with its code."""


class AgentNotFoundError(NotFoundError):
    """No agent of that name is registered."""

    code = ErrorCode.UNKNOWN_AGENT


class CodeVersionNotFoundError(NotFoundError):
    """The agent has no stored code version of that digest (or digest prefix)."""

    code = ErrorCode.UNKNOWN_CODE_VERSION


class UntrustedCodeError(OBusError):
    """A code version is unsigned, signed by a key the operator does not trust, or its
    signature does not verify: it is never loaded."""

    code = ErrorCode.UNKNOWN_CODE_VERSION


class EvolutionNotFoundError(NotFoundError):
    """The agent has no evolution record (none was ever started)."""

    code = ErrorCode.UNKNOWN_EVOLUTION


class DeadLetterNotFoundError(NotFoundError):
    """The dead-letter stream holds no message at that sequence (never, or purged)."""

    code = ErrorCode.UNKNOWN_DEAD_LETTER


class AgentUnavailableError(OBusError):
    """The agent exists but cannot serve right now (suspended, failed, shutting down)."""

    code = ErrorCode.UNAVAILABLE


class OverloadedError(OBusError):
    """The bus is at its intake limit (for everyone, for this agent or for this sender): the
    request was not accepted and nothing was stored. Re-send it later with the same id."""

    code = ErrorCode.OVERLOADED


class RequestTimeoutError(AgentUnavailableError):
    """No reply came in time. The request may still be processed: sending it again with the
    same request id (``ce-id``) returns its outcome and never applies it twice."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message, details={"request_id": request_id} if request_id else None)
        self.request_id = request_id


class SnapshotError(OBusError):
    """A snapshot failed to decode or validate; recovery falls back to an older one."""


class StorageError(OBusError):
    """JetStream refused or failed an operation; the NATS error is the ``__cause__``."""

    code = ErrorCode.UNAVAILABLE


class ConfigurationError(OBusError):
    """Settings are inconsistent or a required resource (nats-server binary) is missing."""
