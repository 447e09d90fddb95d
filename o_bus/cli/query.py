"""`o-bus query AGENT NAME [JSON]`: ask an agent a read-only query and print the reply."""

from __future__ import annotations

import argparse

from o_bus.cli.common import client_for, emit, json_argument

__all__ = ["cmd_query"]


async def cmd_query(args: argparse.Namespace) -> int:
    params = json_argument(args.params, "query params", object_only=True)
    async with client_for(args) as bus:
        reply = await bus.query(
            args.agent, args.name, params, min_seq=args.min_seq, timeout=args.timeout
        )
    emit(reply.as_wire(), args.json)
    return 0 if reply.ok else 1
