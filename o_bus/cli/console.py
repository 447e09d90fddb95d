"""`o-bus console`: serve the web console for any deployment, connected as the command's
connection arguments say (the same identities as every other command)."""

from __future__ import annotations

import argparse

from o_bus.cli.common import connect_options
from o_bus.common.urls import resolve_url
from o_bus.console.server import serve

__all__ = ["cmd_console"]


async def cmd_console(args: argparse.Namespace) -> int:
    url = resolve_url(args.nats, args.data_dir)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return await serve(
        url,
        args.host,
        args.port,
        args.data_dir,
        announce=True,
        options=connect_options(args),
    )
