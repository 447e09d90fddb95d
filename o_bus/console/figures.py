"""Live figures per agent: request rate, p50 and p99 latency, error rate.

Samples the health monitor's summaries (``o.health``, cumulative counters and latency
buckets) once a second and keeps the differences between samples over a sliding window, so
every open page draws from the same series instead of each asking the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from pydantic_core import from_json

from o_bus.store import layout

__all__ = ["FigureSampler", "Point", "quantile"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    at: float  # wall-clock seconds
    rate: float  # requests per second
    errors: float  # errors per second
    p50_ms: float | None
    p99_ms: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "rate": round(self.rate, 2),
            "errors": round(self.errors, 2),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


def quantile(bounds: list[float], counts: list[int], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None: no request)."""
    total = sum(counts)
    if total <= 0:
        return None
    wanted = q * total
    seen = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=False):
        seen += count
        if seen >= wanted:
            return bound if bound != float("inf") else (bounds[-1] if bounds else None)
    return bounds[-1] if bounds else None


@dataclass
class _Series:
    last: dict[str, Any] | None = None
    last_at: float = 0.0
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=300))


class FigureSampler:
    """Asks ``o.health`` every ``interval`` seconds; ``series()`` gives every agent's points."""

    def __init__(self, nc: Client, interval: float = 1.0) -> None:
        self.nc, self.interval = nc, interval
        self._series: dict[str, _Series] = {}
        self.latest: dict[str, Any] = {}  # the last summaries, for the agents view
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Condition()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="console-figures")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(nats.errors.Error, ValueError):
                msg = await self.nc.request(layout.HEALTH_SUBJECT, b"", timeout=2)
                self.take(from_json(msg.data), time.time())
                async with self.changed:
                    self.changed.notify_all()
            await asyncio.sleep(self.interval)

    def take(self, summaries: dict[str, Any], now: float) -> None:
        """Add one sample of every agent's cumulative counters."""
        self.latest = summaries
        for name, summary in (summaries.get("agents") or {}).items():
            series = self._series.setdefault(name, _Series())
            previous, series.last = series.last, summary
            elapsed, series.last_at = now - series.last_at, now
            if previous is None or elapsed <= 0:
                continue
            point = _difference(previous, summary, elapsed, now)
            if point is not None:
                series.points.append(point)

    def series(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [p.as_json() for p in s.points] for name, s in self._series.items()}


def _difference(
    before: dict[str, Any], after: dict[str, Any], elapsed: float, now: float
) -> Point | None:
    requests = after.get("requests", 0) - before.get("requests", 0)
    errors = after.get("errors", 0) - before.get("errors", 0)
    if requests < 0 or errors < 0:  # the monitor restarted: counting begins again
        return None
    latency_after, latency_before = after.get("latency_ms") or {}, before.get("latency_ms") or {}
    bounds = list(latency_after.get("bounds") or [])
    counts = [
        a - b
        for a, b in zip(
            latency_after.get("buckets") or [], latency_before.get("buckets") or [], strict=False
        )
    ]
    if any(c < 0 for c in counts):
        counts = []
    return Point(
        at=now,
        rate=requests / elapsed,
        errors=errors / elapsed,
        p50_ms=quantile(bounds, counts, 0.5),
        p99_ms=quantile(bounds, counts, 0.99),
    )
