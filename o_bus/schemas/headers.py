"""The NATS headers (and the structured-mode body) of requests, replies, events, dead letters.

These TypedDicts are the source of the envelope schemas. :func:`check_headers_match_runtime`
compares them with the headers the runtime really reads and writes, so a renamed header fails
generation instead of documenting a lie.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from o_bus.errors import ErrorCode
from o_bus.store import layout
from o_bus.store.dead_letter import KEEP_BYTES, KEEP_HEADER_BYTES, KEEP_HEADER_VALUE
from o_bus.store.event_log import event_headers
from o_bus.wire.attributes import (
    CLEAN_TEXT,
    MAX_SOURCE_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_TIME_LENGTH,
)
from o_bus.wire.cloudevents import COMMAND_NAME, MAX_ID_LENGTH, REQUIRED_HEADERS, SPECVERSION
from o_bus.wire.codec import CONTENT_TYPES
from o_bus.wire.reply import STATUS_HEADER
from o_bus.wire.trace_context import MAX_TRACESTATE_LENGTH, TRACEPARENT_PATTERN

__all__ = [
    "BinaryRequestHeaders",
    "DeadLetterHeaders",
    "EventHeaders",
    "ReplyHeaders",
    "StructuredRequest",
    "check_headers_match_runtime",
    "media_pattern",
]

_AGENT_TOKEN: Final = layout.AGENT_NAME.pattern.removeprefix("^").removesuffix("$")
_DIGITS: Final = "^[0-9]+$"
_POSITIVE: Final = "^[1-9][0-9]*$"
_DATE_TIME: Final[dict[str, Any]] = {"format": "date-time"}


def media_pattern(types: Iterable[str]) -> str:
    """An ECMA-262 pattern for any of ``types``, with optional parameters after ``;``."""
    escaped = (t.replace(".", r"\.").replace("+", r"\+") for t in sorted(types))
    return rf"^(?:{'|'.join(escaped)})(?:\s*;.*)?$"


_BODY_TYPES: Final = media_pattern(CONTENT_TYPES)
_CLEAN: Final = " No leading or trailing whitespace, no control characters."

BinaryRequestHeaders = TypedDict(
    "BinaryRequestHeaders",
    {
        "ce-id": Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_ID_LENGTH,
                pattern=CLEAN_TEXT,
                description=(
                    "Request id and idempotency key: a re-send with the same id returns the "
                    "first outcome instead of running the command again." + _CLEAN
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
            Field(
                min_length=1,
                max_length=MAX_SOURCE_LENGTH,
                pattern=CLEAN_TEXT,
                description="Who sends the request, e.g. billing/invoicer." + _CLEAN,
            ),
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
                    max_length=MAX_TIME_LENGTH,
                    pattern=CLEAN_TEXT,
                    json_schema_extra=_DATE_TIME,
                    description="Optional CloudEvents time (RFC 3339), kept with the request.",
                ),
            ]
        ],
        "ce-subject": NotRequired[
            Annotated[
                str,
                Field(
                    max_length=MAX_SUBJECT_LENGTH,
                    pattern=CLEAN_TEXT,
                    description="Optional CloudEvents subject, kept with the request." + _CLEAN,
                ),
            ]
        ],
        "ce-traceparent": NotRequired[
            Annotated[
                str,
                Field(
                    pattern=TRACEPARENT_PATTERN,
                    description=(
                        "Optional W3C trace context (CloudEvents distributed-tracing "
                        "extension). A malformed value is dropped, never an error; plain "
                        "'traceparent' is accepted too. See docs/tracing.md."
                    ),
                ),
            ]
        ],
        "ce-tracestate": NotRequired[
            Annotated[
                str,
                Field(
                    max_length=MAX_TRACESTATE_LENGTH,
                    description="Optional W3C tracestate, kept with a valid ce-traceparent.",
                ),
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
            pattern=CLEAN_TEXT,
            description="Request id and idempotency key (as ce-id in binary mode)." + _CLEAN,
        ),
    ]
    type: Annotated[
        str, Field(pattern=COMMAND_NAME.pattern, description="Command name (as ce-type).")
    ]
    source: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_SOURCE_LENGTH,
            pattern=CLEAN_TEXT,
            description="Who sends the request." + _CLEAN,
        ),
    ]
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
        Annotated[
            str,
            Field(
                max_length=MAX_TIME_LENGTH,
                pattern=CLEAN_TEXT,
                json_schema_extra=_DATE_TIME,
                description="Optional time.",
            ),
        ]
    ]
    subject: NotRequired[
        Annotated[
            str,
            Field(
                max_length=MAX_SUBJECT_LENGTH,
                pattern=CLEAN_TEXT,
                description="Optional subject." + _CLEAN,
            ),
        ]
    ]
    traceparent: NotRequired[
        Annotated[
            str,
            Field(pattern=TRACEPARENT_PATTERN, description="Optional W3C trace context."),
        ]
    ]
    tracestate: NotRequired[
        Annotated[str, Field(max_length=MAX_TRACESTATE_LENGTH, description="Optional.")]
    ]


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
        "ce-traceparent": NotRequired[
            Annotated[
                str,
                Field(
                    pattern=TRACEPARENT_PATTERN,
                    description=(
                        "W3C trace context of the decision that produced the event, when its "
                        "request carried one (or tracing is on)."
                    ),
                ),
            ]
        ],
        "ce-tracestate": NotRequired[
            Annotated[str, Field(max_length=MAX_TRACESTATE_LENGTH, description="Its tracestate.")]
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
        "O-Headers-Cut": NotRequired[
            Annotated[
                str,
                Field(
                    pattern=_POSITIVE,
                    description=(
                        "How many of the rejected request's own headers were cut to their "
                        f"first {KEEP_HEADER_VALUE} characters or left out (names a NATS client "
                        f"cannot send, or beyond {KEEP_HEADER_BYTES} bytes of headers in all)."
                    ),
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


def check_headers_match_runtime() -> None:
    """Fail loudly when the runtime reads or writes headers the TypedDicts do not describe."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    time = "2025-01-01T00:00:00.000000Z"
    written = event_headers("a", 1, "t", 1, "r", 1, "1.0.0", time, parent, "k=v")
    documented = EventHeaders.__required_keys__ | EventHeaders.__optional_keys__
    untraced = event_headers("a", 1, "t", 1, "r", 1, "1.0.0", time)
    if set(written) != documented or set(untraced) != EventHeaders.__required_keys__:
        raise RuntimeError(f"EventHeaders {sorted(documented)} != event_headers {sorted(written)}")
    if BinaryRequestHeaders.__required_keys__ != frozenset(REQUIRED_HEADERS):
        raise RuntimeError(f"BinaryRequestHeaders must require exactly {REQUIRED_HEADERS}")
    if STATUS_HEADER not in ReplyHeaders.__required_keys__:
        raise RuntimeError(f"ReplyHeaders lacks {STATUS_HEADER}")
    if SPECVERSION != "1.0":
        raise RuntimeError("the header models pin CloudEvents specversion 1.0")
