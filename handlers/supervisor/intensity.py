"""Restart intensity (OTP): at most N restarts within a period, with exponential backoff."""

from __future__ import annotations

import random
from collections import deque

from o_bus.supervision.records import SupervisionPolicy

__all__ = ["RestartBudget"]


class RestartBudget:
    """Counts restarts in a sliding window and says how long to wait before the next one."""

    def __init__(self, policy: SupervisionPolicy, times: list[float] | None = None) -> None:
        self.policy = policy
        self.times: deque[float] = deque(times or [])
        self.total = len(self.times)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.policy.period:
            self.times.popleft()

    def record(self, now: float) -> bool:
        """Count a restart at ``now``; False when that exceeds the intensity (escalate)."""
        self._trim(now)
        self.times.append(now)
        self.total += 1
        return len(self.times) <= self.policy.max_restarts

    def delay(self, rng: random.Random | None = None) -> float:
        """Backoff before the restart just recorded: doubles per recent restart, with jitter."""
        recent = max(len(self.times) - 1, 0)
        base = min(self.policy.backoff_initial * (2.0**recent), self.policy.backoff_max)
        spread = base * self.policy.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))
