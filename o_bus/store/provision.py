"""Declare every stream and bucket idempotently, with explicit retention and limits."""

from __future__ import annotations

import logging
from dataclasses import replace

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from pydantic import ValidationError

from o_bus.config import StorageConfig
from o_bus.errors import StorageError
from o_bus.store import layout

__all__ = [
    "agent_stream_config",
    "bucket_configs",
    "code_store_config",
    "ensure_agent_stream",
    "ensure_bucket",
    "ensure_code_store",
    "provision",
    "storage_config",
    "stream_configs",
]

log = logging.getLogger(__name__)


def _base(cfg: StorageConfig) -> StreamConfig:
    return StreamConfig(
        storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        num_replicas=cfg.replicas,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_msg_size=cfg.max_msg_size,
        allow_direct=True,
    )


def stream_configs(cfg: StorageConfig) -> list[StreamConfig]:
    """The shared streams (each agent's event stream comes from :func:`agent_stream_config`)."""
    base = _base(cfg)
    return [
        # Every accepted request, before it is processed. Dedup by request id.
        replace(
            base,
            name=layout.WAL_STREAM,
            description="O write-ahead log: every accepted request, before processing",
            subjects=[layout.WAL_PREFIX + ">"],
            max_age=cfg.wal_max_age,
            max_bytes=cfg.wal_max_bytes,
            # Full: the oldest records go. Intake bounds what waits for each agent, so these
            # are records every agent has processed (docs/overload.md, "The WAL's size").
            duplicate_window=cfg.duplicate_window,
        ),
        replace(
            base,
            name=layout.SYSTEM_STREAM,
            description="O system events: lifecycle transitions, starts, crashes",
            subjects=[layout.SYSTEM_WILDCARD],
            max_age=cfg.system_max_age,
        ),
        replace(
            base,
            name=layout.DLQ_STREAM,
            description="O dead letters: rejected input with the reason",
            subjects=[layout.DLQ_PREFIX + ">"],
            max_age=cfg.dlq_max_age,
            max_bytes=cfg.dlq_max_bytes,
        ),
        # Feedback and the regression set are inputs of every later search: no age limit.
        replace(
            base,
            name=layout.FEEDBACK_STREAM,
            description="O feedback: scores and text about requests, as accepted",
            subjects=[layout.FEEDBACK_RECORD_PREFIX + ">"],
            duplicate_window=cfg.duplicate_window,
        ),
        replace(
            base,
            name=layout.REGRESSION_STREAM,
            description="O regression sets: requests every later candidate must pass",
            subjects=[layout.REGRESSION_PREFIX + ">"],
            duplicate_window=cfg.duplicate_window,
        ),
        # Requests where a candidate answered differently from live, with both outputs.
        replace(
            base,
            name=layout.DIFF_STREAM,
            description="O comparisons: candidate vs live outputs that differed",
            subjects=[layout.DIFF_PREFIX + ">"],
            max_age=cfg.system_max_age,
        ),
    ]


def agent_stream_config(cfg: StorageConfig, agent: str) -> StreamConfig:
    """One agent's stream: its events (o.evt), the outcome of every request that changed
    nothing (o.outcome) and takeover fences (o.fence). Never discards by default; deletes are
    denied. Message ids only chain appends together, so the dedup window is short."""
    return replace(
        _base(cfg),
        name=layout.events_stream(agent),
        description=f"O event log of agent {agent}",
        subjects=[
            layout.event_subject(agent),
            layout.outcome_subject(agent),
            layout.fence_subject(agent),
        ],
        max_bytes=cfg.events_max_bytes,
        duplicate_window=1.0,
        allow_atomic=True,
        deny_delete=True,
    )


async def _declare(js: JetStreamContext, stream: StreamConfig) -> None:
    assert stream.name is not None
    try:
        await js.stream_info(stream.name)
    except NotFoundError:
        try:
            await js.add_stream(stream)
            log.info("created stream %s", stream.name)
        except BadRequestError as err:  # created meanwhile by someone else
            log.debug("stream %s: %s", stream.name, err.description)
        return
    try:
        await js.update_stream(stream)
    except BadRequestError as err:
        log.warning("stream %s kept its existing config: %s", stream.name, err.description)


async def _allow_direct(js: JetStreamContext, stream: str) -> None:
    """Direct gets for a bucket created before they were enabled (see ``bucket_configs``)."""
    info = await js.stream_info(stream)
    if not info.config.allow_direct:
        await js.update_stream(replace(info.config, allow_direct=True))
        log.info("bucket stream %s: direct gets enabled", stream)


async def storage_config(js: JetStreamContext) -> StorageConfig:
    """The storage settings `provision` recorded (defaults if none were)."""
    try:
        kv = await js.key_value(layout.CONFIG_BUCKET)
        entry = await kv.get("storage")
        return StorageConfig.model_validate_json(entry.value or b"{}")
    except (NotFoundError, BadRequestError, KeyNotFoundError, ValidationError):
        return StorageConfig()


async def ensure_agent_stream(
    js: JetStreamContext, agent: str, cfg: StorageConfig | None = None
) -> None:
    """Create the agent's event stream if it is missing (idempotent). ``StorageError`` when
    JetStream does not answer (a cluster electing the stream's leader, say)."""
    try:
        await js.stream_info(layout.events_stream(agent))
        return
    except NotFoundError:
        pass
    except nats.errors.Error as err:
        raise StorageError(f"cannot read the event stream of {agent!r}: {err}") from err
    try:
        await _declare(js, agent_stream_config(cfg or await storage_config(js), agent))
    except nats.errors.Error as err:
        raise StorageError(f"cannot create the event stream of {agent!r}: {err}") from err


def bucket_configs(cfg: StorageConfig) -> list[KeyValueConfig]:
    """Every KV bucket O uses, declared once here."""
    return [
        KeyValueConfig(
            bucket=layout.CONFIG_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O settings shared by every process (storage)",
            history=1,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.SNAPSHOTS_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O snapshots: latest states per agent, with code and schema version",
            history=cfg.snapshot_history,
            replicas=cfg.replicas,
            storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        ),
        KeyValueConfig(
            bucket=layout.SUPERVISOR_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O supervisor: agent processes, restarts, status",
            history=1,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.PLACEMENT_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O placement: which host's supervisor runs an agent",
            history=1,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.LEASES_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O leases: which process may act for an agent",
            history=1,
            ttl=cfg.lease_ttl,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.ROUTES_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O routes: live, shadow and canary code versions per agent",
            history=10,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.EVAL_CACHE_BUCKET,
            description="O search evaluations by (candidate, request): checkpoints, a cache",
            history=1,
            ttl=7 * 24 * 3600,
            max_bytes=256 * 1024 * 1024,
            replicas=cfg.replicas,
            storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        ),
        KeyValueConfig(
            bucket=layout.EVOLUTION_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O evolutions: each agent's candidate under test, stage and decisions",
            history=5,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.CODE_VERSIONS_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O code versions: <agent>.<sha256> -> what it defines, who deployed it",
            history=1,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.AGENTS_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O agent registry: instance name -> definition",
            history=5,
            replicas=cfg.replicas,
        ),
        KeyValueConfig(
            bucket=layout.TOOL_KV_BUCKET,
            direct=True,  # gets name the key in the subject: permissions can scope them
            description="O kv tool: values agents store and read through the built-in kv tool",
            history=1,
            replicas=cfg.replicas,
            storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        ),
    ]


async def ensure_bucket(js: JetStreamContext, bucket: str) -> KeyValue:
    """The bucket, created as :func:`provision` would if it is missing."""
    try:
        return await js.key_value(bucket)
    except (NotFoundError, BadRequestError):
        pass
    configs = {c.bucket: c for c in bucket_configs(await storage_config(js))}
    try:
        return await js.create_key_value(configs[bucket])
    except BadRequestError:  # created meanwhile by another process
        return await js.key_value(bucket)


async def provision(js: JetStreamContext, cfg: StorageConfig | None = None) -> None:
    """Create or update the streams and KV buckets. Safe to run any number of times."""
    cfg = cfg or StorageConfig()
    for stream in stream_configs(cfg):
        await _declare(js, stream)
    buckets = bucket_configs(cfg)
    for bucket in buckets:
        try:
            await js.key_value(bucket.bucket)
        except (NotFoundError, BadRequestError):
            await js.create_key_value(bucket)
            log.info("created bucket %s", bucket.bucket)
            continue
        await _allow_direct(js, f"KV_{bucket.bucket}")
    await ensure_code_store(js, cfg)
    kv = await js.key_value(layout.CONFIG_BUCKET)
    await kv.put("storage", cfg.model_dump_json().encode())


def code_store_config(cfg: StorageConfig) -> ObjectStoreConfig:
    """The object store of code versions: one object per sha256, kept until deleted."""
    return ObjectStoreConfig(
        description="O code versions: agent source files by sha256",
        storage=StorageType.FILE if cfg.storage == "file" else StorageType.MEMORY,
        replicas=cfg.replicas,
    )


async def ensure_code_store(js: JetStreamContext, cfg: StorageConfig | None = None) -> ObjectStore:
    """The code-version object store, created if it is missing (idempotent)."""
    try:
        return await js.object_store(layout.CODE_BUCKET)
    except (NotFoundError, BadRequestError):
        pass
    config = code_store_config(cfg or await storage_config(js))
    try:
        store = await js.create_object_store(layout.CODE_BUCKET, config=config)
        log.info("created object store %s", layout.CODE_BUCKET)
        return store
    except BadRequestError:  # created meanwhile by another process
        return await js.object_store(layout.CODE_BUCKET)
