"""Evaluations start only on CPU the rest of the machine leaves idle.

SCHED_IDLE lets an evaluation run only when a core has nothing else to do, but on a machine
that live traffic keeps nearly busy, filling its short idle gaps still costs live: every
wake-up of a live process first has to take the core back, with cold caches (and on shared
hardware threads, the sibling's work slows it). So the pool also waits, before it starts an
evaluation, until everything else on the machine (all CPU time but that of its own running
evaluations) leaves at least ``needed`` cores idle, measured over the last ``window``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection
from typing import Final

__all__ = ["SpareCpu", "busy_seconds", "process_seconds"]

WINDOW: Final = 0.2  # seconds: the shortest span a reading of the CPU is taken over
STALE: Final = 1.0  # seconds: an older reading says nothing about now; start a new one
_TICK: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user and nice
    return (sum(fields) - idle - guest) / _TICK


def process_seconds(pid: int) -> float | None:
    """CPU seconds ``pid`` has used (user + system), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            after_name = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(after_name[11]) + int(after_name[12])) / _TICK


class SpareCpu:
    """Waits until the machine, apart from ``ours`` (the pool's running evaluations), leaves
    ``needed`` cores idle. ``needed`` 0 never waits."""

    def __init__(
        self,
        needed: float,
        *,
        cores: int | None = None,
        busy: Callable[[], float] = busy_seconds,
        used: Callable[[int], float | None] = process_seconds,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.needed = needed
        self.cores = cores or len(os.sched_getaffinity(0))
        self._busy, self._used, self.window, self._clock = busy, used, window, clock
        self._last: tuple[float, float, dict[int, float]] | None = None
        self._lock = asyncio.Lock()

    def _read(self, ours: Collection[int]) -> tuple[float, float, dict[int, float]]:
        mine = {pid: s for pid in ours if (s := self._used(pid)) is not None}
        return self._clock(), self._busy(), mine

    def others(self, ours: Collection[int]) -> float | None:
        """Cores the rest of the machine used since the last reading (None: too soon)."""
        now, busy, mine = self._read(ours)
        if self._last is None or now - self._last[0] > STALE:
            self._last = (now, busy, mine)
            return None
        then, busy_then, mine_then = self._last
        if now - then < self.window:
            return None
        self._last = (now, busy, mine)
        # An evaluation started since the last reading used all its CPU within the window.
        own = sum(s - mine_then.get(pid, 0.0) for pid, s in mine.items())
        return max(0.0, (busy - busy_then - own) / (now - then))

    async def wait(self, ours: Collection[int]) -> None:
        """Return once at least ``needed`` cores are idle apart from ``ours``."""
        if self.needed <= 0:
            return
        async with self._lock:
            while True:
                used = self.others(ours)
                if used is not None and self.cores - used >= self.needed:
                    return
                await asyncio.sleep(self.window)
