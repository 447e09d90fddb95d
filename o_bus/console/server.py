"""Serving the console with uvicorn: `o-bus console` against any deployment, and the console
process `o-bus up` starts (`o-bus run console`)."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import uvicorn

from o_bus.common.access_tokens import Tokens, token_file
from o_bus.common.connect import ConnectOptions
from o_bus.common.signals import run_until_signalled
from o_bus.console.app import build_app
from o_bus.errors import ConfigurationError

__all__ = ["CONSOLE_URL_FILE", "serve", "serve_or_idle"]

log = logging.getLogger(__name__)
CONSOLE_URL_FILE = "console-url"  # in the data dir: where the console of `o-bus up` listens


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigurationError(f"the console cannot listen on {host}:{port}: {err}") from err
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(
    url: str,
    host: str,
    port: int,
    data_dir: Path,
    *,
    announce: bool = False,
    options: ConnectOptions | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM, connected as ``options`` say. The bound address goes to
    ``data_dir/console-url``."""
    tokens = Tokens.load(data_dir)
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    address = f"http://{shown}:{bound_port}/"
    config = uvicorn.Config(
        build_app(url, tokens, options=options),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    (data_dir / CONSOLE_URL_FILE).write_text(address + "\n")
    if announce:
        print(f"O console: {address}?token=<token>", flush=True)
        print(f"  operator token: {token_file(data_dir, 'operator')}", flush=True)
        print(f"  viewer token:   {token_file(data_dir, 'viewer')}", flush=True)
    log.info("console on %s", address)
    try:
        await server.serve(sockets=[sock])
    finally:
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            if (data_dir / CONSOLE_URL_FILE).read_text().strip() == address:
                (data_dir / CONSOLE_URL_FILE).unlink()
    return 0


async def serve_or_idle(url: str, host: str, port: int, data_dir: Path) -> int:
    """The console process of `o-bus up`: a port that is taken is reported, and the process
    then idles until stopped, so a busy console port never takes the platform down (the
    platform restarts a service that exits, and stops when one keeps exiting)."""
    try:
        return await serve(url, host, port, data_dir)
    except ConfigurationError as err:
        log.error("%s; the platform runs without its console", err.message)
    await run_until_signalled(_nothing, _nothing)
    return 0


async def _nothing() -> None:
    return None
