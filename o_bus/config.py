"""Settings for storage and runtime, with documented defaults."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONSUMER_IDLE_HEARTBEAT",
    "DEFAULT_NATS_URL_ENV",
    "RuntimeConfig",
    "StorageConfig",
    "nats_url_from_env",
]

DEFAULT_NATS_URL_ENV = "O_BUS_NATS_URL"
DAY = 86_400.0
CONSUMER_IDLE_HEARTBEAT = 0.5
"""Seconds between the server's idle heartbeats on the ordered consumers that feed an agent
(its WAL, its log while it follows or recovers). nats-py re-creates an ordered consumer after
two missed heartbeats, and keeps trying at that pace: with its default of 5 s an agent whose
consumer lived on a killed server stayed idle 10 to 20 s after the cluster had recovered."""


class StorageConfig(BaseModel):
    """How the streams and buckets are declared. Changing these updates existing streams."""

    model_config = ConfigDict(frozen=True)
    replicas: int = Field(
        1, ge=1, le=5, description="JetStream replicas per stream (3 on a cluster)"
    )
    storage: Literal["file", "memory"] = "file"
    duplicate_window: float = Field(
        120.0, gt=0, description="seconds during which a re-sent request id is recognised"
    )
    wal_max_age: float = Field(7 * DAY, gt=0, description="seconds a WAL record is kept")
    wal_max_bytes: int = Field(
        1024**3,
        ge=-1,
        description="bytes the WAL may hold (-1: no limit); when full, the oldest records "
        "go first (see docs/overload.md)",
    )
    dlq_max_bytes: int = Field(
        256 * 1024**2, ge=-1, description="bytes of dead letters kept; the oldest go first"
    )
    events_max_bytes: int = Field(-1, description="-1: the event log is never truncated")
    dlq_max_age: float = Field(30 * DAY, gt=0)
    system_max_age: float = Field(30 * DAY, gt=0)
    snapshot_history: int = Field(5, ge=1, le=64, description="snapshots kept per agent")
    max_msg_size: int = Field(1024 * 1024, gt=0)
    lease_ttl: float = Field(2.0, gt=0, description="seconds an unrenewed lease lives")


class RuntimeConfig(BaseModel):
    """How agents and the splitter behave."""

    model_config = ConfigDict(frozen=True)
    snapshot_every: int = Field(1000, ge=1, description="take a snapshot every N events")
    max_request_bytes: int = Field(256 * 1024, gt=0, description="larger requests are refused")
    max_header_bytes: int = Field(
        16 * 1024,
        gt=0,
        le=32 * 1024,
        description="requests whose headers (all of them, as sent) are larger are refused; "
        "at most 32 KiB, so a WAL record stays under JetStream's 64 KiB header limit",
    )
    max_batch: int = Field(500, ge=1, le=1000, description="events per atomic append")
    intake_queue: int = Field(
        8192,
        ge=16,
        description="requests the splitter has read but not yet examined; beyond, each is "
        "answered overloaded at once",
    )
    intake_queue_per_sender: int = Field(
        512,
        ge=1,
        description="the same, for one sender (ce-source): senders are served in turn",
    )
    intake_in_flight: int = Field(
        8192, ge=1, description="WAL appends the splitter lets wait for their acknowledgement"
    )
    intake_per_agent: int = Field(
        2048,
        ge=1,
        description="requests one splitter accepted for an agent that the agent has not yet "
        "processed (its heartbeats say how far it is)",
    )
    intake_per_sender: int = Field(
        2048, ge=1, description="the same, for one sender (ce-source) over all agents"
    )
    intake_contended_share: int = Field(
        32,
        ge=1,
        description="what one sender may have waiting at an agent that another sender also "
        "waits for (a lone sender may use all of intake_per_agent)",
    )
    reply_cache: int = Field(20_000, ge=0, description="replies kept for duplicate requests")
    append_timeout: float = Field(5.0, gt=0)
    run_tools: bool = Field(
        True,
        description="run the tool runner of agents that declare tools; processes that run "
        "shadows or candidates turn it off, so they never call a tool",
    )


def nats_url_from_env() -> str | None:
    return os.environ.get(DEFAULT_NATS_URL_ENV) or None
