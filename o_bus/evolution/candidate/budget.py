"""A CPU budget for a shadow: rest long enough that its CPU use stays under a share of a core.

A shadow that follows every live request costs about as much CPU as the live agent itself.
On a machine without spare cores that is taken from live. With a budget, a shadow compares
live traffic in windows: it follows live until it has used its share, then stops reading
(so neither it nor the server works for it), rests, and forks again from live's latest state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CpuBudget"]


class CpuBudget:
    def __init__(
        self,
        share: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
        max_rest: float = 30.0,
    ) -> None:
        if share <= 0:
            raise ValueError("a CPU budget must be a positive share of one core")
        self.share, self.clock, self.cpu, self.max_rest = share, clock, cpu, max_rest
        self._wall = clock()
        self._used = cpu()

    def restart(self) -> None:
        """Begin a new accounting window (after a rest)."""
        self._wall, self._used = self.clock(), self.cpu()

    def rest_needed(self) -> float:
        """Seconds to rest so that CPU over the window (rest included) is ``share`` of a core;
        0 while within budget."""
        elapsed = self.clock() - self._wall
        used = self.cpu() - self._used
        if used <= self.share * elapsed:
            return 0.0
        return min(used / self.share - elapsed, self.max_rest)
