"""`o-bus feedback AGENT REQUEST_ID SCORE [--text T]`: rate one of an agent's requests."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from o_bus.cli.common import client_for, emit

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
    async with client_for(args) as bus:
        reply = await bus.feedback(
            args.agent,
            args.request_id,
            args.score,
            text=args.text,
            by=args.by,
            timeout=args.timeout,
        )
    emit(reply.as_wire(), args.json)
    return 0 if reply.ok else 1
