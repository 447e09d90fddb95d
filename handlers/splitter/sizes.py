"""Size limits of a request at the entry point: its body and its headers."""

from __future__ import annotations

from o_bus.config import RuntimeConfig
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.wire.attributes import header_bytes

__all__ = ["check_sizes"]


def check_sizes(body: bytes, headers: dict[str, str] | None, config: RuntimeConfig) -> None:
    """Raise ``payload_too_large`` (details: part, size, limit) when the body or the header
    block is larger than ``config`` allows."""
    size = len(body)
    if size > config.max_request_bytes:
        raise InvalidRequestError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request body is {size} bytes; the limit is {config.max_request_bytes}",
            details={"size": size, "limit": config.max_request_bytes},
        )
    size = header_bytes(headers)
    if size > config.max_header_bytes:
        raise InvalidRequestError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request headers are {size} bytes; the limit is {config.max_header_bytes}",
            details={"part": "headers", "size": size, "limit": config.max_header_bytes},
        )
