"""Identities for processes started at run time: an agent's (by the supervisor that runs it)
and a candidate's (by the arbiter). The seed is generated on first use; the platform that owns
the server sees the new seed and reloads the server's user list (see :class:`BusSecurity`).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Final

import nats
import nats.errors

from o_bus.common.connect import (
    CREDS_ENV,
    SEED_ENV,
    TLS_CA_ENV,
    TLS_CA_PEM_ENV,
    ConnectOptions,
)
from o_bus.security.identities import IdentityStore
from o_bus.store.layout import validate_agent_name

__all__ = ["CREDS_DIR_ENV", "identity_env", "until_accepted"]

CREDS_DIR_ENV: Final = "O_BUS_CREDS_DIR"
"""The credentials dir, for the services that start processes under other identities."""


def identity_env(role: str, agent: str, *, inline: bool = False) -> dict[str, str]:
    """The environment that makes a child connect as ``role`` of ``agent`` (and not inherit
    the credentials dir); empty when this platform runs without credentials. ``inline``: the
    seed and the CA themselves, for a child that may not read files of the data dir."""
    root = os.environ.get(CREDS_DIR_ENV)
    if not root:
        return {}
    identity = IdentityStore(Path(root)).ensure(role, validate_agent_name(agent))
    if not inline:
        return {CREDS_ENV: str(identity.seed_file), CREDS_DIR_ENV: ""}
    env = {SEED_ENV: identity.seed_file.read_text(encoding="ascii").strip()}
    if ca := os.environ.get(TLS_CA_ENV):
        env[TLS_CA_PEM_ENV] = Path(ca).read_text(encoding="ascii")
    return env


async def _quiet(_err: Exception) -> None:
    """Refusals are expected until the server has reloaded its users."""


async def until_accepted(url: str, env: dict[str, str], timeout: float = 10.0) -> None:
    """Wait until the server accepts the identity ``env`` names (a new one needs a reload);
    after ``timeout`` the child is started anyway and reports what it gets."""
    if not env.get(CREDS_ENV) and not env.get(SEED_ENV):
        return
    options = ConnectOptions.from_env({**os.environ, **env})
    deadline = time.monotonic() + timeout
    while True:
        try:
            nc = await nats.connect(
                url.split(","),
                connect_timeout=2,
                allow_reconnect=False,
                error_cb=_quiet,
                **options.nats_kwargs(),
            )
        except (nats.errors.Error, OSError):
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)
            continue
        await nc.close()
        return
