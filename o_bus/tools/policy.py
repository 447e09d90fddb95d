"""The runner's per-tool policies: a token-bucket rate limit and a result cache with a TTL.

Both take a clock (seconds, monotonic) so that tests can move time by hand.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_core import to_json

from o_bus.tools.spec import RateLimit

__all__ = ["Clock", "ResultCache", "Sleep", "TokenBucket"]

Clock = Callable[[], float]
_ONE = 1.0 - 1e-9  # a token, give or take float rounding of the refill arithmetic
_MIN_WAIT = 1e-4
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """``burst`` tokens, refilled at ``per_second``; each attempt takes one, waiting if none."""

    def __init__(self, limit: RateLimit, clock: Clock, sleep: Sleep = asyncio.sleep) -> None:
        self.limit = limit
        self._clock, self._sleep = clock, sleep
        self._tokens = float(limit.burst)
        self._at = clock()
        self._lock = asyncio.Lock()  # waiters are served in arrival order

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.limit.burst), self._tokens + (now - self._at) * self.limit.per_second
        )
        self._at = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            while self._tokens < _ONE:
                wait = (1.0 - self._tokens) / self.limit.per_second
                await self._sleep(max(wait, _MIN_WAIT))
                self._refill()
            self._tokens -= 1.0


class ResultCache:
    """Successful outputs by (tool, input), each kept ``ttl`` seconds. Beyond ``capacity``
    entries or ``max_bytes`` of JSON in all, the oldest entries go first."""

    def __init__(self, clock: Clock, capacity: int = 1024, max_bytes: int = 8 << 20) -> None:
        self._clock = clock
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size = 0  # bytes of JSON held
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, Any], int]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, output, _ = entry
        if self._clock() >= expires:
            self._drop(key)
            return None
        return output

    def put(self, key: tuple[str, str], output: dict[str, Any], ttl: float) -> None:
        size = len(to_json(output)) + len(key[1])
        if size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = (self._clock() + ttl, output, size)
        self.size += size
        while len(self._entries) > self.capacity or self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry[2]
