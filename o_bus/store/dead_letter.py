"""The dead-letter stream: rejected input, kept with the reason so nothing is silently dropped."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.errors import ErrorCode, OBusError
from o_bus.store import layout
from o_bus.wire.headers import (
    NATS_PREFIX,
    O_ERROR_CODE,
    O_ERROR_MESSAGE,
    O_ORIGINAL_SIZE,
    O_REQUEST_ID,
    O_WAL_SEQ,
)

__all__ = ["DeadLetter", "DeadLetters"]

log = logging.getLogger(__name__)
KEEP_BYTES: Final = 64 * 1024  # an oversized body is kept truncated; its full size is recorded


@dataclass(slots=True, frozen=True)
class DeadLetter:
    agent: str | None
    request_id: str | None
    code: str
    message: str
    body: bytes
    headers: dict[str, str]


class DeadLetters:
    """Publish rejections without blocking the caller; look one up by (agent, request id)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._tasks: set[asyncio.Task[None]] = set()

    def reject(
        self,
        agent: str | None,
        request_id: str | None,
        err: OBusError,
        body: bytes,
        headers: dict[str, str] | None,
        wal_seq: int | None = None,
    ) -> None:
        """Record a rejection in the background; failures are logged, never raised."""
        log.warning(
            "rejected request %r for agent %r: %s (%s)",
            (request_id or "")[:256],
            agent,
            err.message,
            err.code,
        )
        kept = {k: v for k, v in (headers or {}).items() if not k.startswith(NATS_PREFIX)}
        kept.update(
            {
                O_ERROR_CODE: str(err.code),
                O_ERROR_MESSAGE: err.message[:1024],
                O_ORIGINAL_SIZE: str(len(body)),
            }
        )
        if wal_seq is not None:
            kept[O_WAL_SEQ] = str(wal_seq)
        if request_id:
            kept[O_REQUEST_ID] = request_id[:256]
        subject = layout.dlq_subject(agent, request_id)
        task = asyncio.create_task(self._publish(subject, body[:KEEP_BYTES], kept))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            await self.js.publish(subject, body, headers=headers, timeout=5.0)
        except nats.errors.Error:
            log.exception("could not write dead letter to %s", subject)

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def lookup(self, agent: str, request_id: str) -> DeadLetter | None:
        try:
            msg = await self.js.get_last_msg(
                layout.DLQ_STREAM, layout.dlq_subject(agent, request_id), direct=True
            )
        except JsNotFoundError:
            return None
        headers = msg.headers or {}
        return DeadLetter(
            agent=agent,
            request_id=headers.get(O_REQUEST_ID),
            code=headers.get(O_ERROR_CODE, ErrorCode.INTERNAL.value),
            message=headers.get(O_ERROR_MESSAGE, ""),
            body=msg.data or b"",
            headers=headers,
        )
