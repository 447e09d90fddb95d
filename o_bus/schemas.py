"""Generate ``schemas/`` from the Python models: JSON Schemas, an AsyncAPI 3.0 document, a guide.

``python -m o_bus.schemas`` (re)writes the directory; ``python -m o_bus.schemas --check`` lists
missing, changed and obsolete files and exits 1 when there are any. Every file under
``schemas/`` is generated: change the models (or the texts in this module), never the files.
Output is deterministic: JSON with sorted keys and two-space indents, one trailing newline.

The header schemas are the TypedDicts below; the generator checks them against the headers the
runtime really writes, so a renamed header fails generation instead of documenting a lie. The
AsyncAPI document is built here rather than by FastStream, whose generator describes its own
subscribers: it has no channel parameters, reply objects or header schemas, and cannot point
at the schema files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NotRequired

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleChanged
from o_bus.config import StorageConfig
from o_bus.errors import ErrorCode
from o_bus.store import layout
from o_bus.store.dead_letter import KEEP_BYTES
from o_bus.store.event_log import event_headers
from o_bus.wire.cloudevents import COMMAND_NAME, MAX_ID_LENGTH, REQUIRED_HEADERS, SPECVERSION
from o_bus.wire.codec import CLOUDEVENTS_JSON, CONTENT_TYPES, Encoding
from o_bus.wire.reply import STATUS_HEADER, Reply

__all__ = [
    "DEFAULT_OUT",
    "ERROR_MEANINGS",
    "ID_PREFIX",
    "BinaryRequestHeaders",
    "DeadLetterHeaders",
    "EventHeaders",
    "ReplyHeaders",
    "StructuredRequest",
    "check",
    "main",
    "render",
    "write",
]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX: Final = "urn:o-bus:schemas:"
ASYNCAPI_FILE: Final = "asyncapi.json"

REQUEST_BINARY_HEADERS: Final = "envelope/request-binary.headers.schema.json"
REQUEST_STRUCTURED: Final = "envelope/request-structured.schema.json"
REPLY_HEADERS: Final = "envelope/reply.headers.schema.json"
EVENT_HEADERS: Final = "envelope/event.headers.schema.json"
DEAD_LETTER_HEADERS: Final = "envelope/dead-letter.headers.schema.json"
REPLY: Final = "reply.schema.json"
LIFECYCLE_CHANGED: Final = "system/lifecycle-changed.schema.json"


def _default_out() -> Path:
    """``schemas/`` beside ``pyproject.toml`` in a source checkout, else under the current dir."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / "schemas"
    return Path.cwd() / "schemas"


DEFAULT_OUT: Final = _default_out()

ERROR_MEANINGS: Final[Mapping[ErrorCode, str]] = {
    ErrorCode.MALFORMED_REQUEST: (
        "The envelope or body cannot be read: bad ce-id, ce-type or specversion, invalid JSON, "
        "msgpack or base64. Fix the request; do not retry it as is."
    ),
    ErrorCode.MISSING_ATTRIBUTE: (
        "A required CloudEvents attribute is absent (ce-id, ce-type, ce-source, ce-specversion; "
        "details.missing lists them)."
    ),
    ErrorCode.UNSUPPORTED_CONTENT_TYPE: (
        "Content-Type or datacontenttype is not JSON, msgpack or application/cloudevents+json."
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (
        "The request body is larger than the bus accepts (details.size, details.limit)."
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
    ErrorCode.INTERNAL: "A bug in agent or bus code. Report it with the request id.",
}

# -- header and envelope models -------------------------------------------------------------

_AGENT_TOKEN: Final = layout.AGENT_NAME.pattern.removeprefix("^").removesuffix("$")
_DIGITS: Final = "^[0-9]+$"
_POSITIVE: Final = "^[1-9][0-9]*$"
_DATE_TIME: Final[dict[str, Any]] = {"format": "date-time"}


def _media_pattern(types: Iterable[str]) -> str:
    """An ECMA-262 pattern for any of ``types``, with optional parameters after ``;``."""
    escaped = (t.replace(".", r"\.").replace("+", r"\+") for t in sorted(types))
    return rf"^(?:{'|'.join(escaped)})(?:\s*;.*)?$"


_BODY_TYPES: Final = _media_pattern(CONTENT_TYPES)

BinaryRequestHeaders = TypedDict(
    "BinaryRequestHeaders",
    {
        "ce-id": Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_ID_LENGTH,
                description=(
                    "Request id and idempotency key: a re-send with the same id returns the "
                    "first outcome instead of running the command again."
                ),
            ),
        ],
        "ce-type": Annotated[
            str,
            Field(
                pattern=COMMAND_NAME.pattern,
                description="Command name: agents/<definition>/commands/<ce-type>.schema.json.",
            ),
        ],
        "ce-source": Annotated[
            str,
            Field(min_length=1, description="Who sends the request, e.g. billing/invoicer."),
        ],
        "ce-specversion": Annotated[
            Literal["1.0"], Field(description="CloudEvents version: always 1.0.")
        ],
        "Content-Type": NotRequired[
            Annotated[
                str,
                Field(
                    pattern=_BODY_TYPES,
                    description=(
                        "Encoding of the body and of the reply: application/json (the default "
                        "when absent) or application/msgpack. Parameters after ';' are ignored."
                    ),
                ),
            ]
        ],
        "ce-time": NotRequired[
            Annotated[
                str,
                Field(
                    json_schema_extra=_DATE_TIME,
                    description="Optional CloudEvents time (RFC 3339), kept with the request.",
                ),
            ]
        ],
        "ce-subject": NotRequired[
            Annotated[
                str, Field(description="Optional CloudEvents subject, kept with the request.")
            ]
        ],
    },
)


class StructuredRequest(TypedDict):
    """Body of a structured-mode request: one JSON CloudEvent."""

    specversion: Annotated[Literal["1.0"], Field(description="CloudEvents version: 1.0.")]
    id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_ID_LENGTH,
            description="Request id and idempotency key (as ce-id in binary mode).",
        ),
    ]
    type: Annotated[
        str, Field(pattern=COMMAND_NAME.pattern, description="Command name (as ce-type).")
    ]
    source: Annotated[str, Field(min_length=1, description="Who sends the request.")]
    datacontenttype: NotRequired[
        Annotated[
            str,
            Field(
                pattern=_BODY_TYPES,
                description=(
                    "Encoding of the data: application/json when absent. msgpack data goes in "
                    "data_base64. The reply is JSON either way."
                ),
            ),
        ]
    ]
    data: NotRequired[
        Annotated[Any, Field(description="Command data as JSON; absent means an empty object.")]
    ]
    data_base64: NotRequired[
        Annotated[
            str,
            Field(
                json_schema_extra={"contentEncoding": "base64"},
                description="Command data, base64 of its encoded bytes (required for msgpack).",
            ),
        ]
    ]
    time: NotRequired[
        Annotated[str, Field(json_schema_extra=_DATE_TIME, description="Optional time.")]
    ]
    subject: NotRequired[Annotated[str, Field(description="Optional subject.")]]


ReplyHeaders = TypedDict(
    "ReplyHeaders",
    {
        "Content-Type": Annotated[
            Literal["application/json", "application/msgpack"],
            Field(description="Encoding of the reply body: the request's (JSON for structured)."),
        ],
        "O-Status": Annotated[
            Literal["ok", "error"],
            Field(description="ok for an OkReply, error for an ErrorReply."),
        ],
    },
)

EventHeaders = TypedDict(
    "EventHeaders",
    {
        "ce-specversion": Annotated[Literal["1.0"], Field(description="CloudEvents version.")],
        "ce-id": Annotated[
            str,
            Field(
                pattern=f"^{_AGENT_TOKEN}:[1-9][0-9]*$",
                description="<agent>:<ce-sequence>, unique per event.",
            ),
        ],
        "ce-source": Annotated[
            str,
            Field(pattern=f"^o-bus/agents/{_AGENT_TOKEN}$", description="o-bus/agents/<agent>."),
        ],
        "ce-subject": Annotated[
            str, Field(pattern=f"^{_AGENT_TOKEN}$", description="The agent's name.")
        ],
        "ce-type": Annotated[
            str,
            Field(
                min_length=1,
                description=(
                    "Event type: the body follows "
                    "agents/<definition>/events/<ce-type>.v<ce-eventversion>.schema.json."
                ),
            ),
        ],
        "ce-time": Annotated[
            str,
            Field(
                json_schema_extra=_DATE_TIME,
                description="When the producing request was decided (UTC, RFC 3339).",
            ),
        ],
        "ce-sequence": Annotated[
            str,
            Field(
                pattern=_POSITIVE,
                description="The agent's own 1-based event sequence, without gaps (decimal).",
            ),
        ],
        "ce-eventversion": Annotated[
            str,
            Field(pattern=_POSITIVE, description="Schema version of the event type (decimal)."),
        ],
        "ce-requestid": Annotated[
            str, Field(description="ce-id of the request that produced the event.")
        ],
        "ce-walseq": Annotated[
            str,
            Field(pattern=_DIGITS, description="Sequence of that request in O_WAL (decimal)."),
        ],
        "ce-codeversion": Annotated[
            str, Field(description="Version of the agent definition that decided the event.")
        ],
        "Content-Type": Annotated[
            Literal["application/json"], Field(description="The body is JSON.")
        ],
    },
)

DeadLetterHeaders = TypedDict(
    "DeadLetterHeaders",
    {
        "O-Error-Code": Annotated[ErrorCode, Field(description="Why the request was rejected.")],
        "O-Error-Message": Annotated[
            str, Field(max_length=1024, description="Human explanation (first 1024 characters).")
        ],
        "O-Original-Size": Annotated[
            str,
            Field(
                pattern=_DIGITS,
                description=(
                    f"Size in bytes of the rejected body; the stored body is cut to its first "
                    f"{KEEP_BYTES} bytes."
                ),
            ),
        ],
        "O-Request-Id": NotRequired[
            Annotated[
                str,
                Field(
                    max_length=256,
                    description="ce-id of the rejected request (first 256 characters), if any.",
                ),
            ]
        ],
        "O-Wal-Seq": NotRequired[
            Annotated[
                str,
                Field(
                    pattern=_POSITIVE,
                    description="O_WAL sequence, when the agent (not the entry point) rejected it.",
                ),
            ]
        ],
    },
)

# -- schema building ------------------------------------------------------------------------


def _require_all(node: Any) -> None:
    """Mark every property of every object schema required (serialised models have them all)."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if node.get("type") == "object" and isinstance(properties, dict):
            node["required"] = list(properties)
        for value in node.values():
            _require_all(value)
    elif isinstance(node, list):
        for item in node:
            _require_all(item)


def _describe_error_codes(schema: dict[str, Any]) -> None:
    codes = schema.get("$defs", {}).get("ErrorCode")
    if codes is not None:
        codes["x-enumDescriptions"] = {code.value: ERROR_MEANINGS[code] for code in ErrorCode}


def _document(
    path: str,
    schema: dict[str, Any],
    *,
    title: str | None = None,
    description: str | None = None,
    extension: dict[str, Any] | None = None,
) -> dict[str, Any]:
    schema = {"$schema": JSON_SCHEMA_DIALECT, "$id": ID_PREFIX + path, **schema}
    if title is not None:
        schema["title"] = title
    if description is not None:
        schema["description"] = description
    if extension is not None:
        schema["x-o-bus"] = extension
    _describe_error_codes(schema)
    return schema


def _headers_schema(model: type[Any], path: str, description: str) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema()
    for prop in schema["properties"].values():
        prop.pop("title", None)
    schema["additionalProperties"] = {"type": "string"}
    return _document(path, schema, title=model.__name__, description=description)


def _check_headers_match_runtime() -> None:
    """Fail loudly when the runtime writes headers the TypedDicts do not describe."""
    written = event_headers("a", 1, "t", 1, "r", 1, "1.0.0", "2025-01-01T00:00:00.000000Z")
    documented = EventHeaders.__required_keys__ | EventHeaders.__optional_keys__
    if set(written) != documented:
        raise RuntimeError(f"EventHeaders {sorted(documented)} != event_headers {sorted(written)}")
    if BinaryRequestHeaders.__required_keys__ != frozenset(REQUIRED_HEADERS):
        raise RuntimeError(f"BinaryRequestHeaders must require exactly {REQUIRED_HEADERS}")
    if STATUS_HEADER not in ReplyHeaders.__required_keys__:
        raise RuntimeError(f"ReplyHeaders lacks {STATUS_HEADER}")
    if SPECVERSION != "1.0":
        raise RuntimeError("the header models pin CloudEvents specversion 1.0")
    if set(ERROR_MEANINGS) != set(ErrorCode):
        missing = sorted(set(ErrorCode) - set(ERROR_MEANINGS))
        raise RuntimeError(f"ERROR_MEANINGS lacks {missing}: describe every error code")


def _envelope_schemas() -> dict[str, dict[str, Any]]:
    structured = TypeAdapter(StructuredRequest).json_schema()
    structured["not"] = {"required": ["data", "data_base64"]}
    structured["if"] = {
        "properties": {"datacontenttype": {"pattern": "msgpack"}},
        "required": ["datacontenttype"],
    }
    structured["then"] = {"required": ["data_base64"]}
    return {
        REQUEST_BINARY_HEADERS: _headers_schema(
            BinaryRequestHeaders,
            REQUEST_BINARY_HEADERS,
            f"Headers of a binary-mode request on {layout.REQUEST_PREFIX}<agent>; the body is "
            "the command data. Header names are case-sensitive; other headers are ignored.",
        ),
        REQUEST_STRUCTURED: _document(
            REQUEST_STRUCTURED,
            structured,
            description=(
                f"Body of a structured-mode request (header Content-Type: {CLOUDEVENTS_JSON}): "
                "one JSON CloudEvent. data and data_base64 are mutually exclusive; msgpack data "
                "must use data_base64."
            ),
        ),
        REPLY_HEADERS: _headers_schema(
            ReplyHeaders, REPLY_HEADERS, "Headers of a reply on the request's reply inbox."
        ),
        EVENT_HEADERS: _headers_schema(
            EventHeaders,
            EVENT_HEADERS,
            f"CloudEvents binary-mode headers of an event on {layout.EVENT_PREFIX}<agent> in "
            f"the agent's stream {layout.EVENTS_STREAM_PREFIX}<agent>; the body is the JSON "
            "event data. JetStream may "
            "add its own Nats-* headers.",
        ),
        DEAD_LETTER_HEADERS: _headers_schema(
            DeadLetterHeaders,
            DEAD_LETTER_HEADERS,
            f"Headers of a dead letter on {layout.DLQ_PREFIX}<agent>.<hash> in stream "
            f"{layout.DLQ_STREAM}. The rejected request's own headers are kept too, except "
            "Nats-* ones.",
        ),
    }


def _reply_schema() -> dict[str, Any]:
    schema = TypeAdapter(Reply).json_schema(mode="serialization")
    schema["oneOf"] = schema.pop("anyOf")
    _require_all(schema)
    return _document(
        REPLY,
        schema,
        title="Reply",
        description=(
            "Reply to a request, sent to the request's reply inbox in the request's encoding "
            "(JSON for structured mode). Header O-Status is ok for OkReply, error for ErrorReply."
        ),
    )


def _lifecycle_schema() -> dict[str, Any]:
    schema = LifecycleChanged.model_json_schema(mode="serialization")
    _require_all(schema)
    return _document(
        LIFECYCLE_CHANGED,
        schema,
        description=(
            f"An agent's lifecycle transition, JSON on {layout.LIFECYCLE_PREFIX}<agent> in "
            f"stream {layout.SYSTEM_STREAM}."
        ),
    )


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _safe(name: str, what: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{what} {name!r} cannot name a schema file")
    return name


def _command_path(definition: str, command: str) -> str:
    return f"agents/{definition}/commands/{command}.schema.json"


def _event_path(definition: str, event_type: str, version: int) -> str:
    return f"agents/{definition}/events/{event_type}.v{version}.schema.json"


def _state_path(definition: str) -> str:
    return f"agents/{definition}/state.schema.json"


def _agent_schemas(definition: AgentDefinition[Any]) -> dict[str, dict[str, Any]]:
    name = _safe(definition.name, "agent definition")
    out: dict[str, dict[str, Any]] = {}
    for command, command_type in sorted(definition.command_types.items()):
        path = _command_path(name, _safe(command, "command"))
        schema = command_type.model_json_schema(mode="validation")
        out[path] = _document(
            path,
            schema,
            description=schema.get("description")
            or (
                f"Data of command {command!r} (ce-type) for agents of definition {name!r}: the "
                "request body in binary mode, data in structured mode."
            ),
            extension={"definition": name, "command": command},
        )
    for event_type, event_cls in sorted(definition.event_types.items()):
        path = _event_path(name, _safe(event_type, "event type"), event_cls.event_version)
        schema = event_cls.model_json_schema(mode="serialization")
        _require_all(schema)
        out[path] = _document(
            path,
            schema,
            description=schema.get("description")
            or (
                f"Data of event {event_type!r} version {event_cls.event_version} of agents of "
                f"definition {name!r}: the body of an event on {layout.EVENT_PREFIX}<agent>."
            ),
            extension={
                "definition": name,
                "eventType": event_type,
                "eventVersion": event_cls.event_version,
            },
        )
    path = _state_path(name)
    schema = definition.state_type.model_json_schema(mode="serialization")
    _require_all(schema)
    about = f" ({definition.description})" if definition.description else ""
    out[path] = _document(
        path,
        schema,
        description=schema.get("description") or f"State of agents of definition {name!r}{about}.",
        extension={
            "definition": name,
            "definitionVersion": definition.version,
            "stateSchemaVersion": definition.state_schema_version,
        },
    )
    return out


# -- AsyncAPI -------------------------------------------------------------------------------


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def _file(path: str) -> dict[str, str]:
    return _ref(f"./{path}")


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


_AGENT_NAME_TEXT: Final = (
    "Agent instance name: one subject token of 1-64 characters A-Z a-z 0-9 _ -, starting "
    "alphanumeric"
)
_AGENT_PARAMETER: Final = (
    f"{_AGENT_NAME_TEXT}. Each instance runs one agent definition (x-o-bus-definitions)."
)
REPLY_TO_NOTE: Final = (
    "The reply is published to the request's NATS reply subject (its reply inbox, e.g. "
    "_INBOX.<random>), which the client's request call sets and listens on. It is never "
    "published on a fixed subject."
)


def _asyncapi(definitions: Sequence[AgentDefinition[Any]]) -> dict[str, Any]:
    examples = [d.name for d in definitions]
    agent = {"description": _AGENT_PARAMETER, "examples": examples}
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
                "headers": _with_constants(REQUEST_BINARY_HEADERS, {"ce-type": command}),
                "payload": _file(_command_path(d.name, command)),
                "correlationId": {
                    "description": "The request id, echoed as request_id in the reply.",
                    "location": "$message.header#/ce-id",
                },
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
                    EVENT_HEADERS, {"ce-type": event_type, "ce-eventversion": str(version)}
                ),
                "payload": _file(_event_path(d.name, event_type, version)),
            }
    commands.append("command.structured")
    messages["command.structured"] = {
        "name": "command.structured",
        "title": "Any command, structured mode",
        "summary": "One JSON CloudEvent; its data follows the schema of the command named by type.",
        "contentType": CLOUDEVENTS_JSON,
        "headers": {
            "type": "object",
            "properties": {"Content-Type": {"pattern": _media_pattern([CLOUDEVENTS_JSON])}},
            "required": ["Content-Type"],
        },
        "payload": _file(REQUEST_STRUCTURED),
        "correlationId": {
            "description": "The request id, echoed as request_id in the reply.",
            "location": "$message.payload#/id",
        },
    }
    messages["reply"] = {
        "name": "reply",
        "title": "Reply",
        "summary": "OkReply or ErrorReply; header O-Status says which.",
        "description": REPLY_TO_NOTE,
        "contentType": Encoding.JSON.value,
        "headers": _file(REPLY_HEADERS),
        "payload": _file(REPLY),
        "correlationId": {
            "description": "The request's id.",
            "location": "$message.payload#/request_id",
        },
    }
    messages["lifecycleChanged"] = {
        "name": "lifecycleChanged",
        "title": "Lifecycle changed",
        "summary": "An agent moved from one lifecycle state to another.",
        "contentType": Encoding.JSON.value,
        "payload": _file(LIFECYCLE_CHANGED),
    }
    messages["deadLetter"] = {
        "name": "deadLetter",
        "title": "Dead letter",
        "summary": "A rejected request, kept with the reason.",
        "contentType": "application/octet-stream",
        "headers": _file(DEAD_LETTER_HEADERS),
        "payload": {
            "description": (
                f"The rejected request body as received, cut to its first {KEEP_BYTES} bytes "
                "(O-Original-Size gives the full size)."
            )
        },
    }

    def channel_messages(keys: Iterable[str]) -> dict[str, Any]:
        return {key: _ref(f"#/components/messages/{key}") for key in keys}

    def operation_messages(channel: str, keys: Iterable[str]) -> list[dict[str, str]]:
        return [_ref(f"#/channels/{channel}/messages/{key}") for key in keys]

    channels = {
        "request": {
            "address": layout.REQUEST_PREFIX + "{agent}",
            "title": "Requests",
            "description": (
                "Send a command to an agent as a NATS request (core NATS, not JetStream): "
                "binary mode (ce- headers, body = command data) or structured mode (one JSON "
                "CloudEvent)."
            ),
            "parameters": {"agent": agent},
            "messages": channel_messages(commands),
        },
        "reply": {
            "address": None,
            "title": "Reply inbox",
            "description": REPLY_TO_NOTE,
            "messages": channel_messages(["reply"]),
        },
        "events": {
            "address": layout.EVENT_PREFIX + "{agent}",
            "title": "Events",
            "description": (
                "Every event of the agent, in order, in the agent's own JetStream stream "
                f"{layout.EVENTS_STREAM_PREFIX}{{agent}} (kept forever). Read with an ordered "
                "consumer filtered to the subject."
            ),
            "parameters": {"agent": agent},
            "messages": channel_messages(events),
            "x-o-bus-stream": layout.EVENTS_STREAM_PREFIX + "{agent}",
        },
        "lifecycle": {
            "address": layout.LIFECYCLE_PREFIX + "{agent}",
            "title": "Lifecycle",
            "description": f"Lifecycle transitions, in JetStream stream {layout.SYSTEM_STREAM}.",
            "parameters": {"agent": agent},
            "messages": channel_messages(["lifecycleChanged"]),
            "x-o-bus-stream": layout.SYSTEM_STREAM,
        },
        "deadLetters": {
            "address": layout.DLQ_PREFIX + "{agent}.{hash}",
            "title": "Dead letters",
            "description": (
                f"Rejected requests, in JetStream stream {layout.DLQ_STREAM}; the last message on "
                "a subject is the rejection of that request id."
            ),
            "parameters": {
                "agent": {
                    "description": (
                        f"{_AGENT_NAME_TEXT}, or _unrouted when the request named no "
                        "registered agent."
                    ),
                    "examples": [*examples, "_unrouted"],
                },
                "hash": {
                    "description": (
                        "First 24 hex digits (lower case) of SHA-256 of the request's ce-id in "
                        "UTF-8 (of the empty string when it had none)."
                    ),
                },
            },
            "messages": channel_messages(["deadLetter"]),
            "x-o-bus-stream": layout.DLQ_STREAM,
        },
    }
    operations = {
        "handleRequest": {
            "action": "receive",
            "title": "Handle a request",
            "summary": "The bus receives a command and replies to the request's reply inbox.",
            "channel": _ref("#/channels/request"),
            "messages": operation_messages("request", commands),
            "reply": {
                "channel": _ref("#/channels/reply"),
                "messages": operation_messages("reply", ["reply"]),
                "x-o-bus-reply-to": REPLY_TO_NOTE,
            },
        },
        "publishEvents": {
            "action": "send",
            "title": "Publish events",
            "summary": "Events are appended to the agent's log after each accepted command.",
            "channel": _ref("#/channels/events"),
            "messages": operation_messages("events", events),
        },
        "publishLifecycle": {
            "action": "send",
            "title": "Publish lifecycle changes",
            "channel": _ref("#/channels/lifecycle"),
            "messages": operation_messages("lifecycle", ["lifecycleChanged"]),
        },
        "publishDeadLetters": {
            "action": "send",
            "title": "Publish dead letters",
            "channel": _ref("#/channels/deadLetters"),
            "messages": operation_messages("deadLetters", ["deadLetter"]),
        },
    }
    return {
        "asyncapi": "3.0.0",
        "id": ID_PREFIX + ASYNCAPI_FILE,
        "info": {
            "title": "o_bus wire contract",
            "version": package_version("o-bus"),
            "description": (
                "Requests to agents, their replies, and the streams clients read, on NATS "
                "JetStream. Payloads and headers point at the JSON Schema files beside this "
                "document (draft 2020-12, using only keywords draft-07 tools read too). See "
                "README.md."
            ),
        },
        "defaultContentType": Encoding.JSON.value,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
        "x-o-bus-definitions": {
            d.name: {
                "version": d.version,
                "description": d.description,
                "stateSchema": f"./{_state_path(d.name)}",
                "stateSchemaVersion": d.state_schema_version,
            }
            for d in definitions
        },
    }


# -- README ---------------------------------------------------------------------------------


def _header_rows(schema: Mapping[str, Any]) -> list[str]:
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema["properties"].items():
        need = "yes" if name in required else "no"
        rows.append(f"| `{name}` | {need} | {_cell(prop.get('description', ''))} |")
    return rows


def _cell(text: str) -> str:
    """Text for a Markdown table cell: no column breaks, no ``<...>`` read as HTML."""
    return text.replace("|", "\\|").replace("<", "\\<")


_GO_REQUEST = """\
```go
nc, err := nats.Connect(nats.DefaultURL)
if err != nil {
	log.Fatal(err)
}
defer nc.Drain()

msg := nats.NewMsg("o.req.counter")
msg.Header.Set("ce-id", "invoice-4711-add") // keep it: re-send with it after a timeout
msg.Header.Set("ce-type", "increment")
msg.Header.Set("ce-source", "billing/invoicer")
msg.Header.Set("ce-specversion", "1.0")
msg.Header.Set("Content-Type", "application/json")
msg.Data = []byte(`{"by": 5}`)

reply, err := nc.RequestMsg(msg, 5*time.Second)
if err != nil {
	log.Fatal(err) // nats.ErrTimeout: re-send the same message, same ce-id
}
fmt.Println(reply.Header.Get("O-Status"), string(reply.Data))
```"""

_GO_EVENTS = """\
```go
ctx := context.Background()
js, err := jetstream.New(nc)
if err != nil {
	log.Fatal(err)
}
var lastStreamSeq uint64 // stream sequence of the last event handled; 0: none yet
cons, err := js.OrderedConsumer(ctx, "O_EVT_counter", jetstream.OrderedConsumerConfig{
	FilterSubjects: []string{"o.evt.counter"},
	DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
	OptStartSeq:    lastStreamSeq + 1,
})
if err != nil {
	log.Fatal(err)
}
cc, err := cons.Consume(func(m jetstream.Msg) {
	h := m.Headers()
	fmt.Println(h.Get("ce-sequence"), h.Get("ce-type"), string(m.Data()))
	if meta, err := m.Metadata(); err == nil {
		lastStreamSeq = meta.Sequence.Stream // store it to resume from there later
	}
})
if err != nil {
	log.Fatal(err)
}
defer cc.Stop() // events arrive in the callback until then
```"""


def _readme(
    definitions: Sequence[AgentDefinition[Any]],
    files: Mapping[str, str],
    envelope: Mapping[str, Mapping[str, Any]],
) -> str:
    about = {
        ASYNCAPI_FILE: "AsyncAPI 3.0 document: channels, operations, messages.",
        REQUEST_BINARY_HEADERS: "Headers of a binary-mode request.",
        REQUEST_STRUCTURED: "Body of a structured-mode request (one JSON CloudEvent).",
        REPLY_HEADERS: "Headers of a reply.",
        REPLY: "Reply body: `OkReply` or `ErrorReply`, with the error codes.",
        EVENT_HEADERS: "Headers of an event in `O_EVT_<agent>`.",
        DEAD_LETTER_HEADERS: "Headers of a dead letter in `O_DLQ`.",
        LIFECYCLE_CHANGED: "Body of a lifecycle message in `O_SYSTEM`.",
        "README.md": "This guide.",
    }
    for d in definitions:
        for command in d.command_types:
            about[_command_path(d.name, command)] = f"Data of command `{command}`."
        for event_type, cls in d.event_types.items():
            about[_event_path(d.name, event_type, cls.event_version)] = (
                f"Data of event `{event_type}` version {cls.event_version}."
            )
        about[_state_path(d.name)] = "State of the agent (snapshots, status)."
    file_rows = [f"| [`{path}`]({path}) | {about.get(path, '')} |" for path in sorted(files)]
    error_rows = [f"| `{code.value}` | {_cell(ERROR_MEANINGS[code])} |" for code in ErrorCode]
    agent_rows = [
        f"| `{d.name}` | {d.version} | {', '.join(f'`{c}`' for c in sorted(d.command_types))} | "
        + ", ".join(f"`{e}` v{cls.event_version}" for e, cls in sorted(d.event_types.items()))
        + f" | {_cell(d.description)} |"
        for d in definitions
    ]
    binary = envelope[REQUEST_BINARY_HEADERS]
    events = envelope[EVENT_HEADERS]
    dead = envelope[DEAD_LETTER_HEADERS]
    req, evt, life, dlq = (
        layout.REQUEST_PREFIX,
        layout.EVENT_PREFIX,
        layout.LIFECYCLE_PREFIX,
        layout.DLQ_PREFIX,
    )
    lines = [
        "# o_bus wire contract",
        "",
        "Everything a client in any language needs to talk to o_bus agents over NATS. The files",
        "here are generated from the Python models by `python -m o_bus.schemas`; do not edit",
        "them. `python -m o_bus.schemas --check` (part of the test suite) fails when one is out",
        "of date. Schemas are JSON Schema draft 2020-12 using only keywords that draft-07 tools",
        f"read as well; each `$id` is `{ID_PREFIX}<path>`. An agent *instance* (the `<agent>` in",
        "subjects) runs one agent *definition*; the per-agent schemas are per definition.",
        "",
        "| file | what |",
        "| --- | --- |",
        *file_rows,
        "",
        "## Sending a request",
        "",
        "A request to agent `A` is a core NATS request (publish with a reply inbox, wait for one",
        f"message) on `{req}A`. Header names are case-sensitive.",
        "",
        "### Binary mode",
        "",
        "1. Choose a request id, e.g. a UUID, and keep it until you have the reply: it is the",
        "   idempotency key.",
        "2. Encode the command data as JSON (or msgpack) following",
        "   `agents/<definition>/commands/<command>.schema.json`.",
        f"3. Send it as a request on `{req}<agent>` with these headers",
        f"   ([schema]({REQUEST_BINARY_HEADERS})); other headers are ignored:",
        "",
        "   | header | required | meaning |",
        "   | --- | --- | --- |",
        *(f"   {row}" for row in _header_rows(binary)),
        "",
        "4. Wait for the reply. Its body ([schema](reply.schema.json)) is in the request's",
        "   encoding and header `O-Status` is `ok` or `error`. On a timeout, send the same request",
        "   again with the same `ce-id`: within the duplicate window",
        f"   ({StorageConfig().duplicate_window:g} s by default) a request that already ran is not",
        '   applied again and you get its original reply with `"duplicate": true`.',
        "",
        "### Structured mode",
        "",
        f"Set `Content-Type: {CLOUDEVENTS_JSON}` and send one JSON CloudEvent as the body",
        f"([schema]({REQUEST_STRUCTURED})); the reply is always JSON:",
        "",
        "```json",
        '{"specversion": "1.0", "id": "invoice-4711-add", "type": "increment",',
        ' "source": "billing/invoicer", "data": {"by": 5}}',
        "```",
        "",
        'For msgpack data, set `"datacontenttype": "application/msgpack"` and put the base64',
        "of the msgpack bytes in `data_base64` instead of `data`.",
        "",
        "### Replies",
        "",
        "```json",
        '{"ok": true, "agent": "counter", "request_id": "invoice-4711-add", "seq": 7,',
        ' "events": [{"seq": 7, "type": "incremented", "version": 1, "data": {"by": 5}}],',
        ' "duplicate": false}',
        '{"ok": false, "agent": "counter", "request_id": "invoice-4711-add",',
        ' "error": {"code": "invalid_payload", "message": "...", "details": {"errors": []}}}',
        "```",
        "",
        "### Go, with the official client (`github.com/nats-io/nats.go`)",
        "",
        _GO_REQUEST,
        "",
        "## Reading events",
        "",
        f"Each agent's events are on subject `{evt}<agent>` of the agent's own JetStream stream",
        f"`{layout.EVENTS_STREAM_PREFIX}<agent>`, kept forever, in order. Create an *ordered",
        "consumer* on that stream filtered to the subject, delivering from a start sequence. The",
        "start sequence is the JetStream *stream* sequence (the stream also holds the agent's",
        "outcome records and fences): remember the stream sequence of the last event you",
        "handled (message metadata) and start after it.",
        "`ce-sequence` is the agent's own 1-based, gap-free position. The body is the JSON event",
        "data, following `agents/<definition>/events/<ce-type>.v<ce-eventversion>.schema.json`.",
        "Only the current version of each event type has a file; older versions stay in the log",
        "as they were written, so check `ce-eventversion`.",
        "",
        f"Event headers ([schema]({EVENT_HEADERS})):",
        "",
        "| header | always | meaning |",
        "| --- | --- | --- |",
        *_header_rows(events),
        "",
        _GO_EVENTS,
        "",
        "## Other streams",
        "",
        f"- **Lifecycle**: `{life}<agent>` in `{layout.SYSTEM_STREAM}`, one JSON",
        f"  [`LifecycleChanged`]({LIFECYCLE_CHANGED}) per transition.",
        f"- **Dead letters**: `{dlq}<agent>.<hash>` in `{layout.DLQ_STREAM}`, where `<hash>`",
        "  is the first 24 hex digits of SHA-256 of the request's `ce-id` (UTF-8) and `<agent>` is",
        "  `_unrouted` when the request named no registered agent. To see why request `id` was",
        "  rejected, get the last message on that subject. The body is the rejected body (cut to",
        f"  {KEEP_BYTES} bytes); headers ([schema]({DEAD_LETTER_HEADERS})):",
        "",
        "  | header | always | meaning |",
        "  | --- | --- | --- |",
        *(f"  {row}" for row in _header_rows(dead)),
        "",
        f"- **WAL**: `{layout.WAL_PREFIX}<agent>` in `{layout.WAL_STREAM}` holds every accepted",
        "  request in binary mode, with `Nats-Msg-Id: <agent>:<ce-id>`, `O-Reply` and",
        "  `O-Reply-Encoding`. Only the bus writes it; clients never need it.",
        "",
        "## Error codes",
        "",
        f"`error.code` in an `ErrorReply` and `O-Error-Code` on a dead letter ([schema]({REPLY})).",
        "Codes are stable: they are never renamed, only added.",
        "",
        "| code | meaning |",
        "| --- | --- |",
        *error_rows,
        "",
        "## Agent definitions",
        "",
        "| definition | version | commands | events | about |",
        "| --- | --- | --- | --- | --- |",
        *agent_rows,
    ]
    return "\n".join(lines) + "\n"


# -- rendering, writing, checking -----------------------------------------------------------


def _dump(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(catalogue: Catalogue | None = None) -> dict[str, str]:
    """Every generated file, by path relative to ``schemas/``, with its exact text."""
    _check_headers_match_runtime()
    catalogue = catalogue if catalogue is not None else Catalogue.discover()
    definitions = [catalogue.get(name) for name in catalogue.names()]
    envelope = _envelope_schemas()
    documents: dict[str, Mapping[str, Any]] = dict(envelope)
    documents[REPLY] = _reply_schema()
    documents[LIFECYCLE_CHANGED] = _lifecycle_schema()
    for definition in definitions:
        documents.update(_agent_schemas(definition))
    documents[ASYNCAPI_FILE] = _asyncapi(definitions)
    files = {path: _dump(document) for path, document in documents.items()}
    files["README.md"] = ""
    files["README.md"] = _readme(definitions, files, envelope)
    return dict(sorted(files.items()))


def _existing(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {
        path.relative_to(out).as_posix()
        for path in out.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(out).parts)
    }


def check(out: Path = DEFAULT_OUT, files: Mapping[str, str] | None = None) -> list[str]:
    """What is stale in ``out``: ``missing:``, ``changed:`` or ``obsolete:`` and a path each."""
    files = render() if files is None else files
    problems = []
    for path, text in files.items():
        target = out / path
        if not target.is_file():
            problems.append(f"missing: {path}")
        elif target.read_bytes() != text.encode():
            problems.append(f"changed: {path}")
    problems.extend(f"obsolete: {path}" for path in sorted(_existing(out) - set(files)))
    return problems


def write(out: Path = DEFAULT_OUT, files: Mapping[str, str] | None = None) -> list[str]:
    """Bring ``out`` up to date; return what changed (as :func:`check` names it)."""
    files = render() if files is None else files
    problems = check(out, files)
    for problem in problems:
        kind, path = problem.split(": ", 1)
        target = out / path
        if kind == "obsolete":
            target.unlink()
            for parent in target.parents:
                if parent == out or not parent.is_relative_to(out) or any(parent.iterdir()):
                    break
                parent.rmdir()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[path].encode())
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m o_bus.schemas",
        description="Write schemas/ (JSON Schemas, AsyncAPI, README) from the Python models.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{args.out} is stale: run python -m o_bus.schemas", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    changes = write(args.out)
    for change in changes:
        print(change)
    print(f"{args.out}: {len(changes)} file(s) updated" if changes else f"{args.out} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
