"""Connecting to NATS: one connection and its JetStream context, drained on exit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.errors import StorageError

__all__ = ["ConnectOptions", "connect"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Who connects and how: credentials and TLS, resolved once and passed everywhere.

    The default (all ``None``) is an anonymous plain-text connection.
    """

    nkey_seed_file: Path | None = None
    """An nkey seed file (the identity's private key) for NATS nkey authentication."""
    user: str | None = None
    password: str | None = None
    tls_ca_file: Path | None = None
    """Verify the server against this CA bundle (enables TLS)."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    def nats_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        kwargs: dict[str, Any] = {}
        if self.nkey_seed_file is not None:
            kwargs["nkeys_seed"] = str(self.nkey_seed_file)
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password or ""
        if self.tls_ca_file is not None:
            context = ssl.create_default_context(cafile=str(self.tls_ca_file))
            if self.tls_cert_file is not None and self.tls_key_file is not None:
                context.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file))
            kwargs["tls"] = context
        return kwargs


@contextlib.asynccontextmanager
async def connect(
    url: str,
    name: str,
    *,
    timeout: float = 5.0,
    options: ConnectOptions | None = None,
    wait_for_server: bool = True,
) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A NATS connection and JetStream context; drained on exit.

    A service waits for its server as long as it takes (``wait_for_server``); a command or a
    client program gives up once every server of ``url`` refused twice or ``timeout``
    passed, with a ``StorageError`` that says so. Once connected, both reconnect forever."""
    servers = url.split(",") if "," in url else [url]
    refused = 0
    gave_up = asyncio.Event()

    async def on_error(err: Exception) -> None:
        nonlocal refused
        if nc.is_connected or wait_for_server:
            log.warning("%s: NATS error: %s", name, err)
            return
        refused += 1
        if refused >= 2 * len(servers):
            gave_up.set()

    settings: dict[str, Any] = {
        "name": name,
        "connect_timeout": timeout,  # nats-py annotates int; it takes seconds as a float
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "error_cb": on_error,
        **(options or ConnectOptions()).nats_kwargs(),
    }
    nc = Client()
    connecting = asyncio.ensure_future(nc.connect(servers, **settings))
    try:
        if wait_for_server:
            await connecting
        else:
            waiting = asyncio.ensure_future(gave_up.wait())
            try:
                await asyncio.wait(
                    (connecting, waiting), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiting.cancel()
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                with contextlib.suppress(Exception):
                    await nc.close()
                raise StorageError(
                    f"cannot connect to NATS at {url}: no server answered "
                    "(is `o-bus up` running? --nats or $O_BUS_NATS_URL name another)"
                )
            connecting.result()
    except (nats.errors.Error, OSError, ssl.SSLError) as err:
        raise StorageError(f"cannot connect to NATS at {url}: {err}") from err
    try:
        yield nc, nc.jetstream(timeout=timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await nc.drain()
