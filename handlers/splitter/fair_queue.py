"""The splitter's intake queue: one bounded queue per sender, served in turn.

Requests are read off the connection as fast as they come and sorted by sender before any
real work is done on them; a worker then takes one request from each sender in turn. A sender
that floods fills only its own queue (what does not fit is refused at once, without being
parsed), and a request from anyone else waits behind at most one request of each other sender,
not behind the flood.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, Literal, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Round-robin over per-key FIFO queues, ``per_key`` items each, ``total`` in all."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key, self.total = per_key, total
        self._queues: dict[str, deque[T]] = {}
        self._turns: deque[str] = deque()  # keys with something queued, in serving order
        self._size = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return self._size

    def refusal(self, key: str) -> Literal["sender", "queue"] | None:
        """Which bound ``offer`` would refuse an item of ``key`` by now, or None."""
        if self._size >= self.total:
            return "queue"
        queue = self._queues.get(key)
        if queue is not None and len(queue) >= self.per_key:
            return "sender"
        return None

    def offer(self, key: str, item: T) -> bool:
        """Queue ``item`` for ``key``; False (nothing queued) when either bound is reached."""
        if self.refusal(key) is not None:
            return False
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(item)
        self._size += 1
        self._ready.set()
        self._idle.clear()
        return True

    async def take(self) -> T:
        """The next item, from the key whose turn it is."""
        while not self._turns:
            self._ready.clear()
            self._idle.set()
            await self._ready.wait()
        key = self._turns.popleft()
        queue = self._queues[key]
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._turns.append(key)
        else:
            del self._queues[key]
        return item

    async def empty(self) -> None:
        """Wait until everything queued has been taken."""
        await self._idle.wait()
