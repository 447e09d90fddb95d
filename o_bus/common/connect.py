"""Connecting to NATS: one connection and its JetStream context, drained on exit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.errors import StorageError

__all__ = [
    "CREDS_ENV",
    "SEED_ENV",
    "TLS_CA_ENV",
    "TLS_CA_PEM_ENV",
    "TLS_CERT_ENV",
    "TLS_KEY_ENV",
    "ConnectOptions",
    "connect",
    "inbox_prefix_for",
    "inbox_prefix_of",
]

CREDS_ENV = "O_BUS_CREDS"
"""An nkey seed file: the identity this process connects as (set per process by `o-bus up`)."""
SEED_ENV = "O_BUS_NKEY_SEED"
"""The seed itself, for a process that may not read the credentials dir (a candidate)."""
TLS_CA_ENV = "O_BUS_TLS_CA"
TLS_CA_PEM_ENV = "O_BUS_TLS_CA_PEM"
TLS_CERT_ENV = "O_BUS_TLS_CERT"
TLS_KEY_ENV = "O_BUS_TLS_KEY"
INBOX_ROOT = "_INBOX."

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Who connects and how: credentials and TLS, resolved once and passed everywhere.

    All ``None`` is an anonymous plain-text connection; :func:`connect` without options uses
    :meth:`from_env` (what `o-bus up` and the CLI set for the processes they start).
    """

    nkey_seed_file: Path | None = None
    """An nkey seed file (the identity's private key) for NATS nkey authentication."""
    user: str | None = None
    password: str | None = None
    tls_ca_file: Path | None = None
    """Verify the server against this CA bundle (enables TLS)."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    nkey_seed: str | None = None
    """The seed text itself (instead of a file)."""
    tls_ca_pem: str | None = None
    """The CA bundle itself, PEM text (instead of a file)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectOptions:
        """The identity and TLS files named by ``$O_BUS_CREDS`` and ``$O_BUS_TLS_*`` (of
        ``environ``, by default this process's environment)."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        return cls(
            nkey_seed_file=path(CREDS_ENV),
            tls_ca_file=path(TLS_CA_ENV),
            tls_cert_file=path(TLS_CERT_ENV),
            tls_key_file=path(TLS_KEY_ENV),
            nkey_seed=env.get(SEED_ENV) or None,
            tls_ca_pem=env.get(TLS_CA_PEM_ENV) or None,
        )

    def env(self) -> dict[str, str]:
        """These options as the environment variables :meth:`from_env` reads."""
        pairs = (
            (CREDS_ENV, self.nkey_seed_file),
            (TLS_CA_ENV, self.tls_ca_file),
            (TLS_CERT_ENV, self.tls_cert_file),
            (TLS_KEY_ENV, self.tls_key_file),
        )
        env = {name: str(value) for name, value in pairs if value is not None}
        if self.nkey_seed is not None:
            env[SEED_ENV] = self.nkey_seed
        if self.tls_ca_pem is not None:
            env[TLS_CA_PEM_ENV] = self.tls_ca_pem
        return env

    def nats_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        kwargs: dict[str, Any] = {}
        if self.nkey_seed_file is not None:
            kwargs["nkeys_seed"] = str(self.nkey_seed_file)
            kwargs["inbox_prefix"] = inbox_prefix_of(self.nkey_seed_file)
        elif self.nkey_seed is not None:
            kwargs["nkeys_seed_str"] = self.nkey_seed
            kwargs["inbox_prefix"] = _inbox_prefix_of_seed(self.nkey_seed.encode())
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password or ""
        if self.tls_ca_file is not None or self.tls_ca_pem is not None:
            context = ssl.create_default_context(
                cafile=str(self.tls_ca_file) if self.tls_ca_file is not None else None,
                cadata=self.tls_ca_pem,
            )
            if self.tls_cert_file is not None and self.tls_key_file is not None:
                context.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file))
            kwargs["tls"] = context
        return kwargs


def inbox_prefix_of(seed_file: Path) -> str:
    """The reply-inbox prefix of the identity in ``seed_file``: ``_INBOX.<16 chars of its
    public key>``. The server lets each identity subscribe only under its own prefix, so no
    one can read another identity's replies."""
    try:
        seed = seed_file.read_bytes()
    except OSError as err:
        raise StorageError(f"cannot read the nkey seed {seed_file}: {err}") from err
    return _inbox_prefix_of_seed(seed)


def _inbox_prefix_of_seed(seed: bytes) -> str:
    import nkeys

    try:
        public: bytes = nkeys.from_seed(bytearray(seed.strip())).public_key
    except nkeys.NkeysError as err:
        raise StorageError(f"not an nkey seed: {err}") from err
    return inbox_prefix_for(public.decode())


def inbox_prefix_for(public_key: str) -> str:
    """The reply-inbox prefix of the identity whose public key is ``public_key``."""
    return INBOX_ROOT + public_key[1:17]


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
        **(options or ConnectOptions.from_env()).nats_kwargs(),
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
    except (nats.errors.Error, OSError, ssl.SSLError, ValueError) as err:
        raise StorageError(f"cannot connect to NATS at {url}: {err}") from err
    try:
        yield nc, nc.jetstream(timeout=timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await nc.drain()
