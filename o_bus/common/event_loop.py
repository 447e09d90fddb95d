"""Running a process's main coroutine on the fastest event loop available."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["install_uvloop", "run"]


def install_uvloop() -> None:
    """Use uvloop when it is installed: it roughly halves the per-message CPU of nats-py."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine (uvloop when installed) and return its exit status."""
    install_uvloop()
    return asyncio.run(coro)
