"""Connecting to NATS: one connection and its JetStream context, drained on exit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.errors import StorageError

__all__ = ["connect"]

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
