"""The original reply of an already processed request, rebuilt from the agent's stream.

Used for a re-sent request id whose reply is no longer in the worker's cache (after a restart
or eviction). Every processed request left records carrying its WAL sequence: its events, or
an outcome record for a rejection (whose message is in the dead-letter stream).
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

from o_bus.errors import ErrorCode
from o_bus.store import layout
from o_bus.store.dead_letter import DeadLetters
from o_bus.store.event_log import EventLog
from o_bus.store.event_records import H_REQUEST, StoredEvent
from o_bus.wire.headers import O_ERROR_CODE, O_ERROR_MESSAGE
from o_bus.wire.reply import error_reply, ok_reply

__all__ = ["rebuild_reply"]


async def rebuild_reply(
    eventlog: EventLog,
    dead_letters: DeadLetters,
    request_id: str,
    wal_seq: int,
    current_seq: int,
) -> dict[str, Any]:
    """The reply of request ``request_id`` (WAL sequence ``wal_seq``), marked duplicate."""
    agent = eventlog.agent
    records = await eventlog.records_for_wal(wal_seq)
    events: list[dict[str, Any]] = []
    for record in records:
        headers = record.headers or {}
        if headers.get(H_REQUEST) != request_id:
            continue
        if record.subject == layout.outcome_subject(agent):
            code = headers.get(O_ERROR_CODE)
            if code:
                letter = await dead_letters.lookup(agent, request_id)
                message = letter.message if letter else headers.get(O_ERROR_MESSAGE, "")
                return error_reply(agent, request_id, ErrorCode(code), message)
            continue
        event = StoredEvent.from_msg(agent, record.seq or 0, headers, record.data or b"")
        events.append(
            {
                "seq": event.seq,
                "type": event.type,
                "version": event.version,
                "data": from_json(event.data) if event.data else None,
            }
        )
    seq = events[-1]["seq"] if events else current_seq
    return ok_reply(agent, request_id, seq, events, duplicate=True)
