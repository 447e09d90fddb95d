"""Routes of the live figures: the series so far, then a new sample every second (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from o_bus.console.figures import FigureSampler
from o_bus.console.sse import event_stream, sse_response

__all__ = ["routes"]


def _sampler(request: Request) -> FigureSampler:
    sampler: FigureSampler = request.app.state.figures
    return sampler


async def get_figures(request: Request) -> JSONResponse:
    return JSONResponse({"series": _sampler(request).series()})


async def _samples(sampler: FigureSampler) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=16)

    async def forward() -> None:
        while True:
            async with sampler.changed:
                await sampler.changed.wait()
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(("figures", {"series": sampler.series()}))

    task = asyncio.create_task(forward())
    try:
        async for frame in event_stream(queue):
            yield frame
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def follow_figures(request: Request) -> StreamingResponse:
    return sse_response(_samples(_sampler(request)))


routes = [
    Route("/api/figures", get_figures),
    Route("/api/figures/stream", follow_figures),
]
