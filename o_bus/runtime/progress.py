"""How far an agent's active process has processed the WAL, said as soon as it moves.

The splitter counts a request it accepted as waiting for the agent until the agent says it
has processed the request's WAL record (docs/overload.md). Heartbeats say so too, but ten
times a second: at that pace a client that sends one request at a time would look as if it
had dozens waiting, and a flooding sender could not be held to a small share of a busy agent
without holding back well-behaved ones as well. This says it within ``interval`` (10 ms), in
a few bytes, and only when it changed, so an idle agent sends nothing.

Published on core NATS subject ``o.progress.<agent>`` (not persisted): the WAL sequence, in
ASCII decimal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client

from o_bus.store import layout

__all__ = ["ProgressPublisher", "read_progress"]


class ProgressPublisher:
    """Publishes ``processed()`` on ``o.progress.<agent>`` when it changed, checked every
    ``interval`` seconds; ``processed()`` is None while the process is not the active one."""

    def __init__(
        self,
        nc: Client,
        agent: str,
        processed: Callable[[], int | None],
        interval: float = 0.01,
    ) -> None:
        self.nc, self.processed, self.interval = nc, processed, interval
        self.subject = layout.progress_subject(agent)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"progress-{self.subject}")

    async def _run(self) -> None:
        said: int | None = None
        while True:
            await asyncio.sleep(self.interval)
            now = self.processed()
            if now is None or now == said:
                continue
            with contextlib.suppress(nats.errors.Error):
                await self.nc.publish(self.subject, b"%d" % now)
                said = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def read_progress(data: bytes) -> int | None:
    """The WAL sequence a progress message says, or None when it is not one."""
    if not data.isdigit() or len(data) > 20:
        return None
    return int(data)
