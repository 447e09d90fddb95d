"""Publishing a record on a core NATS subject at a fixed interval."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from pydantic import BaseModel

__all__ = ["PeriodicPublisher"]


class PeriodicPublisher:
    """Publishes ``make()`` (a model, as JSON) on ``subject`` every ``interval`` seconds until
    stopped: heartbeats of agent processes, figures of candidate processes."""

    def __init__(
        self, nc: Client, subject: str, make: Callable[[], BaseModel], interval: float
    ) -> None:
        self.nc, self.subject, self.make, self.interval = nc, subject, make, interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.subject}")

    async def beat(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.nc.publish(self.subject, self.make().model_dump_json().encode())

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.beat()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
