"""What a candidate process measured, published every ``interval`` on
``o.cand.<agent>.<version>.stats``. The evolution arbiter gates on these figures, and the
messages double as the heartbeat its watchdog waits for.

Shadow figures compare the candidate with live on the same mirrored requests, measured in the
same process (the live code's latency is that of a second evaluation here), so the two sides
are measured under the same conditions. None of it is mixed into live's own metrics.
"""

from __future__ import annotations

import logging
from collections import deque

from pydantic import BaseModel, ConfigDict, Field, computed_field

__all__ = ["CandidateStats", "LatencyWindow"]

log = logging.getLogger(__name__)


class LatencyWindow:
    """The most recent ``size`` latencies, for percentiles."""

    __slots__ = ("samples",)

    def __init__(self, size: int = 4096) -> None:
        self.samples: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def percentile(self, q: float) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CandidateStats(BaseModel):
    model_config = ConfigDict(frozen=True)
    agent: str
    version: str
    code_version: str
    pid: int
    traffic: str = Field(default="shadow", description="never live: these are mirrored requests")
    phase: str = Field(description="forking | following | failed")
    sandbox: str = Field(description="isolation mechanisms active in the process")
    started_at: float
    sent_at: float
    compared: int = Field(description="mirrored requests evaluated and compared")
    differing: int = Field(description="compared requests whose outputs differed")
    candidate_failures: int = Field(description="requests on which candidate code raised")
    live_failures: int = Field(description="requests on which the live code raised")
    candidate_p99_ms: float | None
    live_p99_ms: float | None
    fitness_n: int = 0
    candidate_fitness: float | None = None
    live_fitness: float | None = None
    fitness_gain_sq_sum: float = Field(
        default=0.0, description="sum of squared (candidate - live) fitness, for its spread"
    )
    canary_decided: int = 0
    canary_failures: int = 0
    canary_p99_ms: float | None = None
    lag: int = Field(default=0, description="live outcomes not yet evaluated")
    rests: int = Field(default=0, description="times it paused to stay within its CPU budget")
    rested_seconds: float = 0.0
    shed: int = Field(
        default=0, description="mirrored requests not compared: sampled out, or shed while behind"
    )
    skipped: int = Field(default=0, description="requests the WAL no longer held")
    reforks: int = Field(default=0, description="forks again after falling far behind live")
    unread: int = Field(
        default=0,
        description="live records never read (about one per request): skipped by a fork "
        "again after a rest or after falling far behind",
    )
    last_failure: str | None = None
    fork_seq: int = Field(default=0, description="agent sequence the shadow forked at")
    seq: int = Field(default=0, description="agent sequence the shadow has reached")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def seen(self) -> int:
        """Live's requests since the shadow started: compared, shed, skipped or unread."""
        return self.compared + self.shed + self.skipped + self.unread

    @computed_field  # type: ignore[prop-decorator]
    @property
    def coverage(self) -> float | None:
        """Share of live's requests the shadow compared (unread records count as requests)."""
        return self.compared / self.seen if self.seen else None
