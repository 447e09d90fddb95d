"""Watching a KV bucket as a stream of typed changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import nats.errors
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

__all__ = ["watch_bucket"]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


async def watch_bucket(
    js: JetStreamContext, bucket: str, model: type[M], *, retry: float = 1.0
) -> AsyncIterator[tuple[str, M | None]]:
    """Yield ``(key, value)`` for current entries and then every change; ``None`` means the key
    was deleted. Undecodable values are logged and skipped. Waits for a missing bucket, and
    for a store that cannot start the watch yet (no leader)."""
    while True:
        try:
            kv = await js.key_value(bucket)
            # A store between leaders may refuse the watch itself: wait, as for the bucket.
            watcher = await kv.watchall()
            break
        except nats.errors.Error as err:
            log.warning("cannot watch %s yet (%r); again in %gs", bucket, err, retry)
            await asyncio.sleep(retry)
    try:
        while True:
            try:
                entry = await watcher.updates(timeout=3600)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                continue
            if entry is None:
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                yield entry.key, None
                continue
            try:
                yield entry.key, model.model_validate_json(entry.value)
            except ValidationError as err:
                log.warning("ignoring undecodable %s/%s: %s", bucket, entry.key, err)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
