"""`o-bus feedback AGENT REQUEST_ID SCORE [--text T]`: rate one of an agent's requests."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from o_bus.cli.common import emit
from o_bus.common.connect import connect
from o_bus.common.urls import resolve_url
from o_bus.evolution.feedback.client import send_feedback

__all__ = ["add_parser", "cmd_feedback"]


def add_parser(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    fb = common(
        sub.add_parser(
            "feedback", help="rate a request: score in [-1, 1]; negative adds it to regressions"
        )
    )
    fb.add_argument("agent")
    fb.add_argument("request_id")
    fb.add_argument("score", type=float, help="-1 (bad) .. 1 (good)")
    fb.add_argument("--text", help="what was wrong or right (read by fitness and search)")
    fb.add_argument("--by", help="who rates")
    fb.add_argument("--timeout", type=float, default=5.0)


async def cmd_feedback(args: argparse.Namespace) -> int:
    async with connect(resolve_url(args.nats), "o-bus-cli") as (nc, _):
        reply = await send_feedback(
            nc,
            args.agent,
            args.request_id,
            args.score,
            text=args.text,
            by=args.by,
            timeout=args.timeout,
        )
    emit(reply, args.json)
    return 0 if reply.get("ok") else 1
