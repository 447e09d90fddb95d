"""Stopping a process that must not outlive what it serves: when asked, within a bound, and
by itself when it cannot reach the bus any more."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeVar

from nats.aio.client import Client

__all__ = ["finish_within", "stop_when_unreachable"]

log = logging.getLogger(__name__)
T = TypeVar("T")


async def finish_within(work: asyncio.Task[T], stop: asyncio.Event, grace: float) -> T | None:
    """``work``'s result; once ``stop`` is set, it has ``grace`` seconds to finish before it
    is cancelled (None then). Work that waits on the bus can hang while the bus is away: a
    stop must not wait for it."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if work.done():
        return work.result()
    try:
        return await asyncio.wait_for(work, grace)
    except TimeoutError:
        log.warning("asked to stop, it did not finish within %.0f s: cancelled", grace)
        return None


async def stop_when_unreachable(
    nc: Client, stop: asyncio.Event, limit: float, interval: float = 0.5
) -> None:
    """Set ``stop`` once ``nc`` has been disconnected for ``limit`` seconds in a row."""
    lost_at: float | None = None
    while not stop.is_set():
        await asyncio.sleep(interval)
        if nc.is_connected:
            lost_at = None
            continue
        now = time.monotonic()
        if lost_at is None:
            lost_at = now
        elif now - lost_at >= limit:
            log.warning("the bus has been unreachable for %.0f s: stopping", now - lost_at)
            stop.set()
