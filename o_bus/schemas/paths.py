"""Where each generated file goes, relative to ``schemas/``, and what identifies it."""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "AGENT_SUPERVISION",
    "ASYNCAPI_FILE",
    "DEAD_LETTER_HEADERS",
    "EVENT_HEADERS",
    "HEARTBEAT",
    "ID_PREFIX",
    "JSON_SCHEMA_DIALECT",
    "LIFECYCLE_CHANGED",
    "README_FILE",
    "REPLY",
    "REPLY_HEADERS",
    "REQUEST_BINARY_HEADERS",
    "REQUEST_STRUCTURED",
    "SYSTEM_EVENT",
    "command_path",
    "event_path",
    "safe",
    "state_path",
]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX: Final = "urn:o-bus:schemas:"  # each file's $id is this prefix and its path
ASYNCAPI_FILE: Final = "asyncapi.json"
README_FILE: Final = "README.md"

REQUEST_BINARY_HEADERS: Final = "envelope/request-binary.headers.schema.json"
REQUEST_STRUCTURED: Final = "envelope/request-structured.schema.json"
REPLY_HEADERS: Final = "envelope/reply.headers.schema.json"
EVENT_HEADERS: Final = "envelope/event.headers.schema.json"
DEAD_LETTER_HEADERS: Final = "envelope/dead-letter.headers.schema.json"
REPLY: Final = "reply.schema.json"
LIFECYCLE_CHANGED: Final = "system/lifecycle-changed.schema.json"
SYSTEM_EVENT: Final = "system/system-event.schema.json"
HEARTBEAT: Final = "system/heartbeat.schema.json"
AGENT_SUPERVISION: Final = "system/agent-supervision.schema.json"

_SAFE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def safe(name: str, what: str) -> str:
    """``name`` if it can be part of a file name, else :class:`ValueError` naming ``what``."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{what} {name!r} cannot name a schema file")
    return name


def command_path(definition: str, command: str) -> str:
    return f"agents/{definition}/commands/{command}.schema.json"


def event_path(definition: str, event_type: str, version: int) -> str:
    return f"agents/{definition}/events/{event_type}.v{version}.schema.json"


def state_path(definition: str) -> str:
    return f"agents/{definition}/state.schema.json"
