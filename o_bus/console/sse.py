"""Server-sent events: one JSON document per ``data:`` line, a comment every few seconds so
proxies keep the stream open and a closed page is noticed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import to_json
from starlette.responses import StreamingResponse

__all__ = ["event_stream", "sse_response"]

KEEPALIVE = 5.0


def _frame(kind: str, value: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + to_json(value) + b"\n\n"


async def event_stream(
    queue: asyncio.Queue[tuple[str, Any]], *, batch: int = 1
) -> AsyncIterator[bytes]:
    """Frames of what is put on ``queue``, with keep-alive comments while it is quiet.

    With ``batch`` > 1, what is already waiting (up to ``batch`` items of one kind) goes out
    as one frame whose data is a list: under load a page gets fewer, larger frames."""
    yield b": open\n\n"
    while True:
        try:
            kind, value = await asyncio.wait_for(queue.get(), KEEPALIVE)
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        if batch <= 1:
            yield _frame(kind, value)
            continue
        values = [value]
        while len(values) < batch and not queue.empty():
            values.append(queue.get_nowait()[1])
        yield _frame(kind, values)


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
