"""A secured nats-server for the security tests: the credentials, permissions (and, if asked,
TLS) `o-bus up` uses, one server per test module; a connection per identity that reports the
server's refusals, and a check that an operation was refused rather than merely slow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.common.connect import ConnectOptions
from o_bus.config import StorageConfig
from o_bus.security.bus import BusSecurity
from o_bus.security.identities import AGENT, CANDIDATE
from o_bus.server.embedded import EmbeddedServer
from o_bus.store.provision import ensure_agent_stream, provision

__all__ = ["AGENTS", "Conn", "SecuredBus", "refused", "secured_bus"]

AGENTS = ("counter", "echo")
REFUSAL_WAIT = 5.0  # a hang guard: a refusal arrives as soon as the server sees the message


@dataclass
class Conn:
    """One identity's connection and the permission errors the server sent it."""

    nc: Client
    js: JetStreamContext
    violations: asyncio.Queue[str]


@dataclass
class SecuredBus:
    server: EmbeddedServer
    security: BusSecurity

    @property
    def url(self) -> str:
        return self.server.url

    def options(self, role: str, agent: str | None = None) -> ConnectOptions:
        return self.security.options(role, agent)

    @contextlib.asynccontextmanager
    async def connect(self, role: str, agent: str | None = None) -> AsyncIterator[Conn]:
        violations: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(err: Exception) -> None:
            if "permissions violation" in str(err).lower():
                violations.put_nowait(str(err))

        nc = await nats.connect(
            self.url,
            connect_timeout=5,
            error_cb=on_error,
            **self.options(role, agent).nats_kwargs(),
        )
        try:
            yield Conn(nc, nc.jetstream(timeout=REFUSAL_WAIT), violations)
        finally:
            await nc.close()


async def refused(conn: Conn, operation: Awaitable[Any]) -> str:
    """Run ``operation`` and return the server's permission error; fail if it succeeded."""
    task: asyncio.Future[Any] = asyncio.ensure_future(operation)
    violation = asyncio.ensure_future(conn.violations.get())
    done, _ = await asyncio.wait(
        {task, violation}, timeout=REFUSAL_WAIT, return_when="FIRST_COMPLETED"
    )
    if violation in done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return str(violation.result())
    violation.cancel()
    if task in done and task.exception() is None:
        # Publish and subscribe return before the server answers: the server processes in
        # order, so a refusal arrives before the flush's PONG.
        await conn.nc.flush()
        await asyncio.sleep(0)
        if not conn.violations.empty():
            return conn.violations.get_nowait()
        raise AssertionError(f"allowed: {operation!r} returned {task.result()!r}")
    raise AssertionError(
        f"no permission error for {operation!r}: {task.exception() if task in done else 'timeout'}"
    )


async def _prepare(bus: SecuredBus) -> None:
    async with bus.connect("operator") as conn:
        await provision(conn.js, StorageConfig())
        for agent in AGENTS:
            await ensure_agent_stream(conn.js, agent)


@contextlib.contextmanager
def secured_bus(directory: Path, *, tls: bool = False) -> Iterator[SecuredBus]:
    """A started, provisioned secured server with the identities of ``AGENTS`` and their
    candidates; stopped on exit."""
    security = BusSecurity.prepare(directory, tls=tls)
    for agent in AGENTS:
        security.identities.ensure(AGENT, agent)
        security.identities.ensure(CANDIDATE, agent)
    server = EmbeddedServer(directory / "nats", **security.server_kwargs())
    server.start()
    try:
        bus = SecuredBus(server, security)
        asyncio.run(_prepare(bus))
        yield bus
    finally:
        server.stop()
