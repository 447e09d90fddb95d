"""Heartbeats: what every agent process says about itself, several times a second.

Published on core NATS subject ``o.hb.<agent>`` (not persisted). The supervisor uses them to
detect hung processes; the health monitor turns them into metrics; ``o-bus ps`` shows them.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable
from typing import Literal

from nats.aio.client import Client
from pydantic import BaseModel, ConfigDict, Field

from o_bus.common.periodic import PeriodicPublisher
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.store import layout

__all__ = ["Heartbeat", "HeartbeatPublisher", "current_rss_bytes"]

log = logging.getLogger(__name__)


class Heartbeat(BaseModel):
    """One agent process's state. ``role`` is ``active`` when it holds the agent's lease."""

    model_config = ConfigDict(frozen=True)
    agent: str
    definition: str
    pid: int
    holder: str = Field(description="lease holder id of this process")
    role: Literal["active", "standby", "starting"]
    lifecycle: str
    code_version: str
    started_at: float = Field(description="unix time the process started")
    sent_at: float
    seq: int = Field(description="event-log sequence reached (durable)")
    wal_seq: int = Field(description="WAL stream sequence processed")
    wal_backlog: int = Field(description="WAL records waiting for this agent")
    rss_bytes: int
    requests: int
    errors: int
    latency_sum_ms: float
    latency_buckets: list[int] = Field(
        description=f"counts per bucket with upper bounds {list(LATENCY_BUCKETS_MS)} ms, then +Inf"
    )


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux), else peak RSS."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class HeartbeatPublisher(PeriodicPublisher):
    """An agent process's heartbeats on ``o.hb.<agent>``."""

    def __init__(
        self, nc: Client, agent: str, make: Callable[[], Heartbeat], interval: float = 0.1
    ) -> None:
        super().__init__(nc, layout.heartbeat_subject(agent), make, interval)
