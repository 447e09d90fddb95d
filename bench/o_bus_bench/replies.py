"""Every answer to one request that several processes answer (the splitters of a queue group
each answer their status subject)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Final

from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["all_replies"]

ROUND: Final = 0.5  # seconds to wait for every answer to one request


async def all_replies(
    nc: Client, subject: str, expected: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Collect ``expected`` JSON replies to one empty request on ``subject``, asking again
    every half second (a process still starting answers a later round); ``TimeoutError``
    saying how many came when no round gets them all within ``timeout``."""
    deadline = time.monotonic() + timeout
    most = 0
    while True:
        replies = await _one_round(nc, subject, expected, min(ROUND, timeout))
        if len(replies) >= expected:
            return replies
        most = max(most, len(replies))
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{most} of {expected} answered on {subject}")


async def _one_round(nc: Client, subject: str, expected: int, wait: float) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    everyone = asyncio.Event()

    async def collect(msg: Msg) -> None:
        replies.append(json.loads(msg.data))
        if len(replies) >= expected:
            everyone.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, b"", reply=inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), wait)
    finally:
        await sub.unsubscribe()
    return replies
