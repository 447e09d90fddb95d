"""Every answer to one request that several processes answer (the splitters of a queue group
each answer their status subject)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["all_replies"]


async def all_replies(
    nc: Client, subject: str, expected: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Publish an empty request on ``subject`` and collect ``expected`` JSON replies;
    ``TimeoutError`` saying how many came when fewer come within ``timeout``."""
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
        await asyncio.wait_for(everyone.wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"{len(replies)} of {expected} answered on {subject}") from None
    finally:
        await sub.unsubscribe()
    return replies
