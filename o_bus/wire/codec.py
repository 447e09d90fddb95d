"""Body codecs: JSON and MessagePack, chosen by ``Content-Type``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgpack
from pydantic_core import from_json, to_json

from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = ["Encoding", "decode", "encode", "encoding_for"]


class Encoding(StrEnum):
    JSON = "application/json"
    MSGPACK = "application/msgpack"


CLOUDEVENTS_JSON = "application/cloudevents+json"

CONTENT_TYPES = {
    "application/json": Encoding.JSON,
    "application/msgpack": Encoding.MSGPACK,
    "application/x-msgpack": Encoding.MSGPACK,
    "application/vnd.msgpack": Encoding.MSGPACK,
}


def encoding_for(content_type: str | None) -> Encoding:
    """Map a ``Content-Type`` (parameters ignored) to a body encoding; JSON when absent."""
    if not content_type:
        return Encoding.JSON
    base = content_type.split(";", 1)[0].strip().lower()
    try:
        return CONTENT_TYPES[base]
    except KeyError:
        raise InvalidRequestError(
            ErrorCode.UNSUPPORTED_CONTENT_TYPE,
            f"unsupported Content-Type {content_type!r}: use application/json, "
            f"application/msgpack or {CLOUDEVENTS_JSON}",
        ) from None


def encode(value: Any, encoding: Encoding) -> bytes:
    if encoding is Encoding.JSON:
        return to_json(value, inf_nan_mode="null")  # NaN and infinities are not JSON
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def decode(body: bytes, encoding: Encoding) -> Any:
    """Decode a body; raise ``InvalidRequestError(malformed_request)`` on bad bytes."""
    try:
        if encoding is Encoding.JSON:
            return from_json(body) if body else None
        return msgpack.unpackb(body, raw=False, strict_map_key=True) if body else None
    except (ValueError, msgpack.UnpackException, TypeError) as err:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"body is not valid {encoding.name}: {err}"
        ) from err
