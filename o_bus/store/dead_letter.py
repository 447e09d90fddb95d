"""The dead-letter stream: rejected input, kept with the reason so nothing is silently dropped."""

from __future__ import annotations

import asyncio
import logging
import re
import time
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
    O_HEADERS_CUT,
    O_ORIGINAL_SIZE,
    O_REQUEST_ID,
    O_WAL_SEQ,
)

__all__ = [
    "KEEP_BYTES",
    "KEEP_HEADER_BYTES",
    "KEEP_HEADER_VALUE",
    "DeadLetter",
    "DeadLetters",
    "kept_headers",
]

log = logging.getLogger(__name__)
KEEP_BYTES: Final = 64 * 1024  # an oversized body is kept truncated; its full size is recorded
# The rejected request's own headers are kept within these bounds, so a dead letter always
# fits JetStream's header limit (64 KiB) whatever was sent.
KEEP_HEADER_VALUE: Final = 1024  # characters of each value
KEEP_HEADER_BYTES: Final = 16 * 1024  # of all the request's headers together
MAX_WRITING: Final = 1024  # dead letters being written at once; beyond, they are counted
LOG_PER_SECOND: Final = 20
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")


def kept_headers(headers: dict[str, str] | None) -> tuple[dict[str, str], int]:
    """The request headers a dead letter keeps, and how many were cut short or left out:
    no ``Nats-`` header, no name a NATS client cannot send back, values and total bounded."""
    kept: dict[str, str] = {}
    cut, room = 0, KEEP_HEADER_BYTES
    for name, value in (headers or {}).items():
        if name.startswith(NATS_PREFIX):
            continue
        short = value[:KEEP_HEADER_VALUE]
        size = len(name) + 4 + len(short.encode())
        if _TOKEN.fullmatch(name) is None or size > room:
            cut += 1
            continue
        cut += len(short) < len(value)
        kept[name] = short
        room -= size
    return kept, cut


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
        self.not_written = 0  # rejections a flood of bad input left without a dead letter
        self._log_second = self._logged = self._unlogged = self._not_written_logged = 0

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
        self._log(agent, request_id, err)
        kept, cut = kept_headers(headers)
        if cut:
            kept[O_HEADERS_CUT] = str(cut)
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
        if len(self._tasks) >= MAX_WRITING:
            # The sender still gets its error reply; only the copy for the record is skipped.
            self.not_written += 1
            return
        subject = layout.dlq_subject(agent, request_id)
        task = asyncio.create_task(self._publish(subject, body[:KEEP_BYTES], kept))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log(self, agent: str | None, request_id: str | None, err: OBusError) -> None:
        """One line per rejection, at most ``LOG_PER_SECOND`` a second, then a count."""
        second = int(time.monotonic())
        if second != self._log_second:
            if self._unlogged or self.not_written != self._not_written_logged:
                log.warning(
                    "%d more rejection(s) not logged one by one; %d dead letter(s) not written "
                    "in all (a flood of bad input)",
                    self._unlogged,
                    self.not_written,
                )
                self._not_written_logged = self.not_written
            self._log_second, self._logged, self._unlogged = second, 0, 0
        if self._logged >= LOG_PER_SECOND:
            self._unlogged += 1
            return
        self._logged += 1
        log.warning(
            "rejected request %r for agent %r: %s (%s)",
            (request_id or "")[:256],
            agent,
            err.message,
            err.code,
        )

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
