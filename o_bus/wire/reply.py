"""Replies to requests: a result (events produced, sequence reached) or an error object.

The pydantic models document the contract and generate ``schemas/``; the hot path builds the
same shapes as plain dicts (see :func:`ok_reply` and :func:`error_reply`).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import ErrorCode, OBusError
from o_bus.wire.codec import Encoding, encode
from o_bus.wire.headers import CONTENT_TYPE, O_STATUS

__all__ = [
    "STATUS_HEADER",
    "ErrorBody",
    "ErrorReply",
    "EventOut",
    "OkReply",
    "Reply",
    "encode_reply",
    "error_reply",
    "error_reply_from",
    "ok_reply",
]

STATUS_HEADER: Final = O_STATUS


class EventOut(BaseModel):
    """One event as returned to a client: its sequence in the agent's log, type, version, data."""

    model_config = ConfigDict(frozen=True)
    seq: int = Field(description="1-based position in the agent's own event log")
    type: str
    version: int = Field(description="schema version of the event type")
    data: dict[str, Any]


class OkReply(BaseModel):
    """Successful reply: the events the command produced and the log sequence reached."""

    model_config = ConfigDict(frozen=True)
    ok: Literal[True] = True
    agent: str
    request_id: str
    seq: int = Field(description="the agent's event-log sequence after this request")
    events: list[EventOut]
    duplicate: bool = Field(
        default=False, description="true when this is the stored reply of an earlier identical id"
    )


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: ErrorCode
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorReply(BaseModel):
    """Error reply with a stable ``code`` and a human ``message``."""

    model_config = ConfigDict(frozen=True)
    ok: Literal[False] = False
    agent: str | None
    request_id: str | None
    error: ErrorBody


Reply = OkReply | ErrorReply


def ok_reply(
    agent: str, request_id: str, seq: int, events: list[dict[str, Any]], *, duplicate: bool = False
) -> dict[str, Any]:
    return {
        "ok": True,
        "agent": agent,
        "request_id": request_id,
        "seq": seq,
        "events": events,
        "duplicate": duplicate,
    }


def error_reply(
    agent: str | None,
    request_id: str | None,
    code: ErrorCode,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "ok": False,
        "agent": agent,
        "request_id": request_id,
        "error": {"code": code.value, "message": message, "details": details or {}},
    }


def error_reply_from(agent: str | None, request_id: str | None, err: OBusError) -> dict[str, Any]:
    return error_reply(agent, request_id, err.code, err.message, err.details)


# Built once: every reply of an encoding and status carries the same headers (not mutated).
_REPLY_HEADERS: Final = {
    (encoding, ok): {CONTENT_TYPE: encoding.value, O_STATUS: "ok" if ok else "error"}
    for encoding in Encoding
    for ok in (True, False)
}


def encode_reply(reply: dict[str, Any], encoding: Encoding) -> tuple[bytes, dict[str, str]]:
    """Encode a reply dict; return the body and the reply headers. Every reply the bus sends
    (agent, splitter, duplicates, queries) goes through here; do not mutate the headers."""
    return encode(reply, encoding), _REPLY_HEADERS[encoding, bool(reply["ok"])]
