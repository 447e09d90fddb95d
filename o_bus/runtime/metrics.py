"""Per-agent request metrics, cheap enough for the hot path: counters and a fixed histogram."""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["LATENCY_BUCKETS_MS", "RequestMetrics"]

# Upper bounds (ms) of the latency histogram buckets, Prometheus style (cumulative on export).
LATENCY_BUCKETS_MS: Final = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
)


class RequestMetrics:
    """Requests, errors and latency (from WAL acceptance to reply) of one agent process."""

    __slots__ = ("buckets", "errors", "latency_sum_ms", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency_sum_ms = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # last one is +Inf

    def observe(self, latency_ms: float, error: bool) -> None:
        self.requests += 1
        if error:
            self.errors += 1
        self.latency_sum_ms += latency_ms
        self.buckets[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency_sum_ms": round(self.latency_sum_ms, 3),
            "latency_buckets": list(self.buckets),
        }
