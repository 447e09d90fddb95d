"""Schema files of the envelope: request, reply, event and dead-letter headers, structured body."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from o_bus.store import layout
from o_bus.wire.codec import CLOUDEVENTS_JSON

from .build import document
from .headers import (
    BinaryRequestHeaders,
    DeadLetterHeaders,
    EventHeaders,
    ReplyHeaders,
    StructuredRequest,
)
from .paths import (
    DEAD_LETTER_HEADERS,
    EVENT_HEADERS,
    REPLY_HEADERS,
    REQUEST_BINARY_HEADERS,
    REQUEST_STRUCTURED,
)

__all__ = ["envelope_schemas"]


def _headers_schema(model: type[Any], path: str, description: str) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema()
    for prop in schema["properties"].values():
        prop.pop("title", None)
    schema["additionalProperties"] = {"type": "string"}
    return document(path, schema, title=model.__name__, description=description)


def envelope_schemas() -> dict[str, dict[str, Any]]:
    """Every envelope schema file, by path."""
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
        REQUEST_STRUCTURED: document(
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
