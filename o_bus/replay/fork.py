"""Fork an agent at a point in its history into a new agent; the original is untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.store import layout
from o_bus.store.event_log import NewEvent, StoredEvent, event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.registry import AgentRecord, Registry
from o_bus.wire.headers import CE_FORKEDFROM

__all__ = ["fork"]

CHUNK = 1000  # the atomic batch limit


async def fork(
    nc: Client,
    js: JetStreamContext,
    source: str,
    at_seq: int,
    into: str,
    *,
    before_register: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Copy ``source``'s events 1..``at_seq`` into a new agent ``into``; return events copied.

    The copy is claimed by optimistic concurrency (the new log must be empty) and the new agent
    is registered only once its history is complete, so no worker starts on a partial log.
    ``before_register`` runs just before that (the CLI gives the new agent its source's code).
    """
    layout.validate_agent_name(into)
    registry = Registry(js)
    record = await registry.get(source)
    if into in {r.name for r in await registry.all()}:
        raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, f"agent {into!r} already exists")
    src, dst = JetStreamEventLog(nc, js, source), JetStreamEventLog(nc, js, into)
    end = await src.last_position()
    if at_seq < 0 or at_seq > end.seq:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"--at {at_seq} is outside {source!r}'s log (1..{end.seq})"
        )
    await ensure_agent_stream(js, into)
    dst_end = await dst.last_position()
    if dst_end.seq:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"agent {into!r} already has events; choose a new name"
        )
    copied, read_from, written_to = 0, 0, dst_end.guard_seq
    while copied < at_seq:
        chunk: list[StoredEvent] = []

        def take(event: StoredEvent, chunk: list[StoredEvent] = chunk) -> bool:
            chunk.append(event)
            return len(chunk) >= CHUNK or event.seq >= at_seq

        await src.replay(take, after_stream_seq=read_from)
        if not chunk:
            break
        read_from = chunk[-1].stream_seq
        batch = []
        for event in chunk:
            headers = event_headers(
                into,
                event.seq,
                event.type,
                event.version,
                event.request_id or "",
                0,
                event.code_version,
                event.time,
            )
            headers[CE_FORKEDFROM] = f"{source}:{event.seq}"
            batch.append(NewEvent(event.data, headers))
        written_to = await dst.append(written_to, batch)
        copied = chunk[-1].seq
    if before_register is not None:
        await before_register()
    await registry.register(
        AgentRecord(
            name=into,
            definition=record.definition,
            commands=record.commands,
            created_at=utc_now(),
            forked_from={"agent": source, "seq": at_seq},
        ),
        create_only=True,
    )
    return copied
