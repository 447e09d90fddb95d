"""A small HTTP/1.1 client on asyncio streams, for the HTTP and language-model tools.

Cancellable at any point (the runner's timeouts cancel it), one connection per request, and
defensive: the status line, headers and body are bounded, and a malformed or oversized
response is a :class:`ToolFailure` with a clear message, never a crash or an unbounded read.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from o_bus.tools.spec import ToolFailure

__all__ = ["HttpResponse", "http_request"]

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes


def _bad(message: str) -> ToolFailure:
    return ToolFailure(f"malformed HTTP response: {message}")


def _too_large(limit: int) -> ToolFailure:
    return ToolFailure(f"HTTP response body is larger than {limit} bytes", code="output_too_large")


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        raise _bad("connection closed in the middle of the headers") from err
    except asyncio.LimitOverrunError as err:
        raise _bad(f"a header line is longer than {MAX_HEADER_BYTES} bytes") from err
    return line.rstrip(b"\r\n")


async def _head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    while True:
        status_line = (await _line(reader)).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise _bad(f"status line {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        size = 0
        while line := await _line(reader):
            size += len(line)
            if size > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
                raise _bad(f"more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name.strip():
                raise _bad(f"header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:  # skip interim responses (100 Continue)
            return status, parts[2] if len(parts) > 2 else "", headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str], limit: int) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_text = (await _line(reader)).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as err:
                raise _bad(f"chunk size {size_text[:20]!r}") from err
            if size == 0:
                while await _line(reader):  # trailers
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise _too_large(limit)
            try:
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            except asyncio.IncompleteReadError as err:
                raise _bad("connection closed in the middle of a chunk") from err
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise _bad(f"Content-Length {length_text[:20]!r}")
        length = int(length_text)
        if length > limit:
            raise _too_large(limit)
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError as err:
            raise _bad(f"body ended after {len(err.partial)} of {length} bytes") from err
    body = bytearray()
    while chunk := await reader.read(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def http_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    max_response_bytes: int = 1024 * 1024,
) -> HttpResponse:
    """Send one request and read the whole response (``Connection: close``).

    Raises ``ToolFailure``: retryable when the server cannot be reached, not retryable for
    a malformed or oversized response.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolFailure(f"unsupported URL {url[:200]!r}: use http:// or https://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise ToolFailure(f"invalid port in URL {url[:200]!r}") from err
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host_header}",
        "Connection: close",
        "Accept-Encoding: identity",
        "User-Agent: o-bus-tools",
        f"Content-Length: {len(body)}",
    ]
    for name, value in (headers or {}).items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ToolFailure(f"invalid request header {name[:50]!r}")
        lines.append(f"{name}: {value}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body
    try:
        reader, writer = await asyncio.open_connection(
            parts.hostname,
            port,
            ssl=ssl.create_default_context() if parts.scheme == "https" else None,
            limit=MAX_HEADER_BYTES,
        )
    except OSError as err:
        raise ToolFailure(
            f"cannot connect to {parts.hostname}:{port}: {err.strerror or err}", retryable=True
        ) from err
    try:
        writer.write(request)
        await writer.drain()
        status, reason, response_headers = await _head(reader)
        if method == "HEAD" or status in (204, 304):
            data = b""
        else:
            data = await _body(reader, response_headers, max_response_bytes)
        return HttpResponse(status, reason, response_headers, data)
    except ConnectionError as err:
        raise ToolFailure(
            f"connection to {parts.hostname}:{port} lost: {err}", retryable=True
        ) from err
    finally:
        writer.close()  # not awaited: a timed-out call must end at once
