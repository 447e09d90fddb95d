"""Shared CLI plumbing: printing results, reading JSON arguments, connection options."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from o_bus.common.connect import ConnectOptions, connect
from o_bus.common.urls import resolve_url
from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = [
    "add_connection_arguments",
    "cli_connect",
    "client_for",
    "connect_options",
    "emit",
    "json_argument",
]

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js import JetStreamContext

    from o_bus.client import Client

PASSWORD_ENV = "O_BUS_NATS_PASSWORD"


def emit(value: Any, as_json: bool) -> None:
    """One line: strict compact JSON for scripts (``--json``), readable JSON for people."""
    if as_json:
        sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def json_argument(text: str | None, what: str, *, object_only: bool = False) -> Any:
    """Parse a JSON command-line argument; a clear ``InvalidRequestError`` if it is not."""
    if text is None:
        return None
    try:
        value = from_json(text)
    except ValueError as err:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"{what} is not valid JSON ({err}): {text!r}"
        ) from err
    if object_only and not isinstance(value, dict):
        raise InvalidRequestError(ErrorCode.INVALID_PAYLOAD, f"{what} must be a JSON object")
    return value


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--nats`` and who connects how (nkey, user/password, TLS)."""
    parser.add_argument(
        "--nats",
        help="NATS URL(s), comma-separated (default: $O_BUS_NATS_URL, "
        "then the URL of a local `o-bus up`, then nats://127.0.0.1:4222)",
    )
    parser.add_argument("--nkey", type=Path, help="nkey seed file to authenticate with")
    parser.add_argument("--user", help=f"NATS user (password from ${PASSWORD_ENV})")
    parser.add_argument("--tls-ca", type=Path, help="CA bundle to verify the server (TLS)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", type=Path, help="client certificate's key (mutual TLS)")


def connect_options(args: argparse.Namespace) -> ConnectOptions:
    """The options given on the command line, else the identity and TLS files of the
    environment (``--creds``, ``$O_BUS_CREDS``, or the data dir of a local `o-bus up`)."""
    env = ConnectOptions.from_env()
    nkey = getattr(args, "nkey", None)
    user = getattr(args, "user", None)
    explicit_identity = nkey is not None or user is not None
    return ConnectOptions(
        nkey_seed_file=nkey if explicit_identity else env.nkey_seed_file,
        nkey_seed=None if explicit_identity else env.nkey_seed,
        user=user,
        password=os.environ.get(PASSWORD_ENV) if user else None,
        tls_ca_file=getattr(args, "tls_ca", None) or env.tls_ca_file,
        tls_ca_pem=None if getattr(args, "tls_ca", None) else env.tls_ca_pem,
        tls_cert_file=getattr(args, "tls_cert", None) or env.tls_cert_file,
        tls_key_file=getattr(args, "tls_key", None) or env.tls_key_file,
    )


def client_for(args: argparse.Namespace, **kwargs: Any) -> Client:
    """The :class:`Client` the command's connection arguments describe."""
    # Imported on use: `o-bus run agent` builds this parser and needs none of it.
    from o_bus.client import Client

    return Client(args.nats, options=connect_options(args), name="o-bus-cli", **kwargs)


def cli_connect(
    args: argparse.Namespace, name: str = "o-bus-cli"
) -> contextlib.AbstractAsyncContextManager[tuple[NatsClient, JetStreamContext]]:
    """A NATS connection as the command's connection arguments describe."""
    return connect(
        resolve_url(args.nats), name, options=connect_options(args), wait_for_server=False
    )
