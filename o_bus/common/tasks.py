"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them to end.

    Cancels again while any is still running: on Python 3.11 ``asyncio.wait_for`` (used inside
    nats-py) can swallow a cancellation that races with its result, and a task in a loop would
    then never end.
    """
    pending = [task for task in tasks if not task.done()]
    rounds = 5
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=timeout / rounds)
        pending = list(still)
