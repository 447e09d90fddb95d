"""Declare every stream and bucket idempotently, with explicit retention and limits."""

from __future__ import annotations

import logging
from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from o_bus.config import StorageConfig
from o_bus.store import layout

__all__ = ["provision", "stream_configs"]

log = logging.getLogger(__name__)


def stream_configs(cfg: StorageConfig) -> list[StreamConfig]:
    base = StreamConfig(
        storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        num_replicas=cfg.replicas,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_msg_size=cfg.max_msg_size,
        allow_direct=True,
    )
    return [
        # Every accepted request, before it is processed. Dedup by request id.
        replace(
            base,
            name=layout.WAL_STREAM,
            description="O write-ahead log: every accepted request, before processing",
            subjects=[layout.WAL_PREFIX + ">"],
            max_age=cfg.wal_max_age,
            max_bytes=cfg.wal_max_bytes,
            duplicate_window=cfg.duplicate_window,
        ),
        # Every state change (o.evt), the outcome of every request that changed nothing
        # (o.outcome) and takeover fences (o.fence). Never discards by default; appends are
        # atomic batches with optimistic concurrency over all three subjects of an agent.
        replace(
            base,
            name=layout.EVENTS_STREAM,
            description="O event log: every state change of every agent",
            subjects=[
                layout.EVENT_PREFIX + ">",
                layout.OUTCOME_PREFIX + ">",
                layout.FENCE_PREFIX + ">",
            ],
            max_bytes=cfg.events_max_bytes,
            duplicate_window=cfg.duplicate_window,
            allow_atomic=True,
            deny_delete=True,
        ),
        replace(
            base,
            name=layout.SYSTEM_STREAM,
            description="O system events: lifecycle transitions, starts, crashes",
            subjects=["o.sys.>"],
            max_age=cfg.system_max_age,
        ),
        replace(
            base,
            name=layout.DLQ_STREAM,
            description="O dead letters: rejected input with the reason",
            subjects=[layout.DLQ_PREFIX + ">"],
            max_age=cfg.dlq_max_age,
        ),
    ]


async def provision(js: JetStreamContext, cfg: StorageConfig | None = None) -> None:
    """Create or update the streams and KV buckets. Safe to run any number of times."""
    cfg = cfg or StorageConfig()
    for stream in stream_configs(cfg):
        try:
            await js.stream_info(stream.name)  # type: ignore[arg-type]
        except NotFoundError:
            await js.add_stream(stream)
            log.info("created stream %s", stream.name)
            continue
        try:
            await js.update_stream(stream)
        except BadRequestError as err:
            log.warning("stream %s kept its existing config: %s", stream.name, err.description)
    buckets = [
        KeyValueConfig(
            bucket=layout.SNAPSHOTS_BUCKET,
            description="O snapshots: latest states per agent, with code and schema version",
            history=cfg.snapshot_history,
            replicas=cfg.replicas,
            storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        ),
        KeyValueConfig(
            bucket=layout.SUPERVISOR_BUCKET,
            description="O supervisor: agent processes, restarts, status",
            history=1,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.LEASES_BUCKET,
            description="O leases: which process may act for an agent",
            history=1,
            ttl=cfg.lease_ttl,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.AGENTS_BUCKET,
            description="O agent registry: instance name -> definition",
            history=5,
            replicas=cfg.replicas,
        ),
    ]
    for bucket in buckets:
        try:
            await js.key_value(bucket.bucket)
        except (NotFoundError, BadRequestError):
            await js.create_key_value(bucket)
            log.info("created bucket %s", bucket.bucket)
