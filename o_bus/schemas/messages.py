"""AsyncAPI message objects: commands, events, replies and the bus's own messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from o_bus.agent.definition import AgentDefinition
from o_bus.store.dead_letter import KEEP_BYTES
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding
from o_bus.wire.headers import CE_EVENTVERSION, CE_TYPE, CONTENT_TYPE

from .headers import media_pattern
from .paths import (
    AGENT_SUPERVISION,
    DEAD_LETTER_HEADERS,
    EVENT_HEADERS,
    HEARTBEAT,
    LIFECYCLE_CHANGED,
    REPLY,
    REPLY_HEADERS,
    REQUEST_BINARY_HEADERS,
    REQUEST_STRUCTURED,
    SYSTEM_EVENT,
    command_path,
    event_path,
)

__all__ = ["REPLY_TO_NOTE", "agent_messages", "bus_messages", "ref"]

REPLY_TO_NOTE: Final = (
    "The reply is published to the request's NATS reply subject (its reply inbox, e.g. "
    "_INBOX.<random>), which the client's request call sets and listens on. It is never "
    "published on a fixed subject."
)
_REQUEST_ID_ECHOED: Final = "The request id, echoed as request_id in the reply."


def ref(target: str) -> dict[str, str]:
    """A JSON reference: ``#/...`` in the document, ``./<path>`` a file beside it."""
    return {"$ref": target}


def _file(path: str) -> dict[str, str]:
    return ref(f"./{path}")


def _with_constants(path: str, constants: Mapping[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "allOf": [
            _file(path),
            {
                "properties": {key: {"const": value} for key, value in constants.items()},
                "required": list(constants),
            },
        ],
    }


def _correlation(description: str, location: str) -> dict[str, str]:
    return {"description": description, "location": location}


def _json_message(key: str, title: str, summary: str, path: str) -> dict[str, Any]:
    """A message whose body is the JSON document ``path`` describes, without headers."""
    return {
        "name": key,
        "title": title,
        "summary": summary,
        "contentType": Encoding.JSON.value,
        "payload": _file(path),
    }


def agent_messages(
    definitions: Sequence[AgentDefinition[Any]],
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Keys of the command and event messages of every definition, and the messages by key."""
    messages: dict[str, Any] = {}
    commands: list[str] = []
    events: list[str] = []
    for d in definitions:
        for command in sorted(d.command_types):
            key = f"command.{d.name}.{command}"
            commands.append(key)
            messages[key] = {
                "name": key,
                "title": f"{d.name}: {command}",
                "summary": f"Command {command!r} to an agent of definition {d.name!r}.",
                "description": (
                    "Binary mode. Content-Type application/json (shown) or application/msgpack: "
                    "the reply uses the same encoding."
                ),
                "contentType": Encoding.JSON.value,
                "headers": _with_constants(REQUEST_BINARY_HEADERS, {CE_TYPE: command}),
                "payload": _file(command_path(d.name, command)),
                "correlationId": _correlation(_REQUEST_ID_ECHOED, "$message.header#/ce-id"),
            }
        for event_type, event_cls in sorted(d.event_types.items()):
            version = event_cls.event_version
            key = f"event.{d.name}.{event_type}.v{version}"
            events.append(key)
            messages[key] = {
                "name": key,
                "title": f"{d.name}: {event_type} v{version}",
                "summary": f"Event {event_type!r} v{version} of an agent of definition {d.name!r}.",
                "contentType": Encoding.JSON.value,
                "headers": _with_constants(
                    EVENT_HEADERS, {CE_TYPE: event_type, CE_EVENTVERSION: str(version)}
                ),
                "payload": _file(event_path(d.name, event_type, version)),
            }
    return commands, events, messages


def bus_messages() -> dict[str, Any]:
    """Messages that are the same for every agent definition, by key."""
    return {
        "command.structured": {
            "name": "command.structured",
            "title": "Any command, structured mode",
            "summary": (
                "One JSON CloudEvent; its data follows the schema of the command named by type."
            ),
            "contentType": CLOUDEVENTS_JSON,
            "headers": {
                "type": "object",
                "properties": {CONTENT_TYPE: {"pattern": media_pattern([CLOUDEVENTS_JSON])}},
                "required": [CONTENT_TYPE],
            },
            "payload": _file(REQUEST_STRUCTURED),
            "correlationId": _correlation(_REQUEST_ID_ECHOED, "$message.payload#/id"),
        },
        "reply": {
            "name": "reply",
            "title": "Reply",
            "summary": "OkReply or ErrorReply; header O-Status says which.",
            "description": REPLY_TO_NOTE,
            "contentType": Encoding.JSON.value,
            "headers": _file(REPLY_HEADERS),
            "payload": _file(REPLY),
            "correlationId": _correlation("The request's id.", "$message.payload#/request_id"),
        },
        "lifecycleChanged": _json_message(
            "lifecycleChanged",
            "Lifecycle changed",
            "An agent moved from one lifecycle state to another.",
            LIFECYCLE_CHANGED,
        ),
        "systemEvent": _json_message(
            "systemEvent",
            "Supervision event",
            "The supervisor started, adopted, restarted, took over, stopped or gave up on an "
            "agent process, or saw one exit, crash or hang.",
            SYSTEM_EVENT,
        ),
        "heartbeat": _json_message(
            "heartbeat",
            "Heartbeat",
            "One agent process's state, role and request counters.",
            HEARTBEAT,
        ),
        "progress": {
            "name": "progress",
            "title": "WAL progress",
            "summary": "The WAL sequence the agent's active process has processed, in ASCII "
            "decimal (no headers).",
            "contentType": "text/plain",
            "payload": {"type": "string", "pattern": "^[0-9]{1,20}$", "examples": ["1024"]},
        },
        "agentSupervision": _json_message(
            "agentSupervision",
            "Supervisor's record",
            "The supervisor's view of one agent: status, processes, restarts, policy.",
            AGENT_SUPERVISION,
        ),
        "deadLetter": {
            "name": "deadLetter",
            "title": "Dead letter",
            "summary": "A rejected request, kept with the reason.",
            "contentType": "application/octet-stream",
            "headers": _file(DEAD_LETTER_HEADERS),
            "payload": {
                "description": (
                    f"The rejected request body as received, cut to its first {KEEP_BYTES} "
                    "bytes (O-Original-Size gives the full size)."
                )
            },
        },
    }
