"""What each error code means: the reply schema, the dead-letter schema and the guide say it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from o_bus.errors import ErrorCode

__all__ = ["ERROR_MEANINGS", "check_error_meanings"]

ERROR_MEANINGS: Final[Mapping[ErrorCode, str]] = {
    ErrorCode.MALFORMED_REQUEST: (
        "The envelope or body cannot be read: bad ce-id, ce-type or specversion; an id, "
        "source, subject or time with leading or trailing whitespace, a control character or "
        "too many characters; invalid JSON, msgpack or base64. Fix the request; do not retry "
        "it as is."
    ),
    ErrorCode.MISSING_ATTRIBUTE: (
        "A required CloudEvents attribute is absent (ce-id, ce-type, ce-source, ce-specversion; "
        "details.missing lists them)."
    ),
    ErrorCode.UNSUPPORTED_CONTENT_TYPE: (
        "Content-Type or datacontenttype is not JSON, msgpack or application/cloudevents+json."
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (
        "The request body, or its headers all together (details.part: headers), are larger "
        "than the bus accepts (details.size, details.limit, in bytes)."
    ),
    ErrorCode.UNKNOWN_AGENT: "No agent of that name is registered.",
    ErrorCode.UNKNOWN_COMMAND: "The agent has no command named by ce-type.",
    ErrorCode.INVALID_PAYLOAD: (
        "The data does not match the command's schema; details.errors lists each problem."
    ),
    ErrorCode.COMMAND_REJECTED: (
        "The command is valid but the agent refused it in its current state; nothing was stored."
    ),
    ErrorCode.CONCURRENCY_CONFLICT: (
        "Another writer appended to the agent's log first; re-send with the same ce-id."
    ),
    ErrorCode.UNAVAILABLE: (
        "The agent or the storage cannot serve now (suspended, recovering, JetStream trouble); "
        "re-send later with the same ce-id."
    ),
    ErrorCode.INTERNAL: (
        "A bug in agent or bus code (for example, a handler returned an event that has no "
        "applier). Report it with the request id."
    ),
    ErrorCode.UNKNOWN_CODE_VERSION: (
        "The agent has no stored code version of that digest or prefix (`o-bus versions` "
        "page lists them)."
    ),
    ErrorCode.UNKNOWN_EVOLUTION: "The agent has no evolution: none was ever started.",
    ErrorCode.OVERLOADED: (
        "The bus is at its intake limit, for everyone, for this agent or for this sender "
        "(details.scope: bus, agent or sender); nothing was stored. Re-send later with the "
        "same ce-id, after a pause that grows with each refusal."
    ),
    ErrorCode.UNKNOWN_DEAD_LETTER: (
        "The dead-letter stream holds no message at that sequence (the console's dead-letter "
        "page lists them)."
    ),
}


def check_error_meanings() -> None:
    """Fail loudly when an error code has no meaning to publish."""
    if set(ERROR_MEANINGS) != set(ErrorCode):
        missing = sorted(set(ErrorCode) - set(ERROR_MEANINGS))
        raise RuntimeError(f"ERROR_MEANINGS lacks {missing}: describe every error code")
