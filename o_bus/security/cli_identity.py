"""The identity of an `o-bus` command: ``--creds FILE``, else ``$O_BUS_CREDS``, else the
operator's seed in the data dir of a local `o-bus up`; TLS files likewise from the data dir."""

from __future__ import annotations

import os
from pathlib import Path

from o_bus.common.connect import CREDS_ENV, TLS_CA_ENV, ConnectOptions
from o_bus.common.urls import DEFAULT_DATA_DIR
from o_bus.errors import ConfigurationError
from o_bus.security.identities import OPERATOR, IdentityStore
from o_bus.security.tls import TLS_DIR, TlsFiles

__all__ = [
    "DATA_DIR_ENV",
    "command_environment",
    "default_data_dir",
    "environment_options",
]

DATA_DIR_ENV = "O_BUS_DATA_DIR"


def command_environment(data_dir: Path, creds: Path | None) -> dict[str, str]:
    """Environment variables to set so that this command (and what it starts) connects as
    the right identity; only what is not already set."""
    env: dict[str, str] = {}
    if creds is not None:
        if not creds.is_file():
            raise ConfigurationError(f"--creds {creds}: no such file")
        env[CREDS_ENV] = str(creds.absolute())
    elif not os.environ.get(CREDS_ENV):
        seed = IdentityStore.of_data_dir(data_dir).path(OPERATOR)
        if seed.is_file():
            env[CREDS_ENV] = str(seed)
    tls = TlsFiles.in_dir(data_dir.absolute() / TLS_DIR)
    if not os.environ.get(TLS_CA_ENV) and tls.ca.is_file():
        env.update(tls.client_options().env())
    return env


def default_data_dir(fallback: Path) -> Path:
    """``$O_BUS_DATA_DIR`` (set by `o-bus up` for what it starts), else ``fallback``."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else fallback


def environment_options(data_dir: Path | None = None) -> ConnectOptions:
    """How a program connects with no options given: the identity and TLS files of the
    environment (``$O_BUS_CREDS``, ``$O_BUS_TLS_*``), else those of the local `o-bus up`
    whose data dir is ``data_dir`` (``$O_BUS_DATA_DIR``, else ``./.o-bus``), as the CLI does."""
    folder = data_dir or default_data_dir(DEFAULT_DATA_DIR)
    return ConnectOptions.from_env({**os.environ, **command_environment(folder, None)})
