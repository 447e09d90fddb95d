"""Bytes no client library would send: a request with a hand-written header block."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse

__all__ = ["raw_nats_request"]


async def raw_nats_request(url: str, subject: str, header_block: bytes, body: bytes) -> bytes:
    """Send one request with a hand-written header block over a bare socket; return the reply."""
    address = urlparse(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        await reader.readline()  # INFO
        connect = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
        headers = b"NATS/1.0\r\n" + header_block + b"\r\n"
        writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        writer.write(b"SUB _INBOX.raw.reply 1\r\n")
        lengths = f"{len(headers)} {len(headers) + len(body)}"
        writer.write(f"HPUB {subject} _INBOX.raw.reply {lengths}\r\n".encode() + headers + body)
        writer.write(b"\r\n")
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
                await writer.drain()
            elif line.startswith((b"HMSG", b"MSG")):
                sizes = line.split()
                total, header_len = int(sizes[-1]), int(sizes[-2]) if line[0:1] == b"H" else 0
                payload = await reader.readexactly(total + 2)
                return payload[header_len:total]
            elif line.startswith(b"-ERR") or not line:
                raise AssertionError(f"server said {line!r}")
    finally:
        writer.close()
        await writer.wait_closed()
