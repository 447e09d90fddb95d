"""`o-bus query AGENT NAME [JSON]`: ask an agent a read-only query and print the reply."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic_core import from_json

from o_bus import client
from o_bus.cli.common import emit
from o_bus.common.connect import connect
from o_bus.common.urls import resolve_url
from o_bus.errors import ErrorCode, InvalidRequestError

__all__ = ["cmd_query"]


async def cmd_query(args: argparse.Namespace) -> int:
    try:
        params: Any = from_json(args.params) if args.params else {}
    except ValueError as err:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"query params are not valid JSON: {err}"
        ) from err
    if not isinstance(params, dict):
        raise InvalidRequestError(ErrorCode.INVALID_PAYLOAD, "query params must be a JSON object")
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, _):
        reply = await client.query(
            nc, args.agent, args.name, params, min_seq=args.min_seq, timeout=args.timeout
        )
    emit(reply, args.json)
    return 0 if reply.get("ok") else 1
