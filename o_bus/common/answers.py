"""Waiting until something answers requests on a subject: a service that has just started."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client

__all__ = ["until_answered"]


async def until_answered(
    nc: Client,
    subject: str,
    *,
    timeout: float,
    attempt: float = 0.5,
    pause: float = 0.1,
    check: Callable[[], None] | None = None,
) -> bytes:
    """Request ``subject`` (empty body) until a reply comes; return the reply's body.

    Each attempt waits ``attempt`` seconds, attempts are ``pause`` apart. ``check`` runs before
    each attempt and may raise to give up early (the process that should answer has exited,
    say). Raises ``TimeoutError`` when nothing answered within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        try:
            reply = await nc.request(subject, b"", timeout=attempt)
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answered on {subject} within {timeout}s") from None
            await asyncio.sleep(pause)
        else:
            return reply.data
