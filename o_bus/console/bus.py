"""The console's one connection to the platform, opened and closed with the web app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from starlette.requests import Request

from o_bus.common.connect import ConnectOptions, connect

__all__ = ["Bus", "bus_of", "connected"]


@dataclass
class Bus:
    nc: Client
    js: JetStreamContext
    url: str


@contextlib.asynccontextmanager
async def connected(url: str, options: ConnectOptions | None = None) -> AsyncIterator[Bus]:
    """The console's connection, with the identity and TLS of ``options``."""
    async with connect(url, "o-bus-console", options=options) as (nc, js):
        yield Bus(nc, js, url)


def bus_of(request: Request) -> Bus:
    bus: Bus = request.app.state.bus
    return bus
