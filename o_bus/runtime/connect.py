"""Connecting to NATS, and running a long-lived service until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.errors import StorageError

__all__ = ["connect", "install_uvloop", "run_until_signalled"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def connect(
    url: str, name: str, *, timeout: float = 5.0
) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A NATS connection and JetStream context; drained on exit."""

    async def on_error(err: Exception) -> None:
        log.warning("%s: NATS error: %s", name, err)

    try:
        nc = await nats.connect(
            url.split(",") if "," in url else url,
            name=name,
            connect_timeout=timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=on_error,
        )
    except (nats.errors.Error, OSError) as err:
        raise StorageError(f"cannot connect to NATS at {url}: {err}") from err
    try:
        yield nc, nc.jetstream(timeout=timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await nc.drain()


def install_uvloop() -> None:
    """Use uvloop when it is installed: it roughly halves the per-message CPU of nats-py."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def run_until_signalled(
    start: Callable[[], Awaitable[Any]],
    stop: Callable[[], Awaitable[Any]],
    until: Awaitable[Any] | None = None,
) -> None:
    """Start a service, wait for SIGINT/SIGTERM (or ``until``), then stop it."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    await start()
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop_event.wait())]
    if until is not None:
        waiters.append(asyncio.ensure_future(until))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await stop()
