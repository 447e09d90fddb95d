"""Find a recorded request by its id: which WAL record it was, and its command and data.

The agent's own stream names each request it answered (``ce-requestid``) with its WAL sequence
(``ce-walseq``), so a request is found by reading that stream backwards from its end (rated
requests are usually recent; the scan is bounded) and then reading one WAL record directly.
"""

from __future__ import annotations

from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.errors import StorageError
from o_bus.evolution.adversarial.cases import Step
from o_bus.store import layout
from o_bus.store.event_records import H_REQUEST, H_WAL
from o_bus.wire.codec import Encoding, decode
from o_bus.wire.headers import CE_TYPE, CONTENT_TYPE

__all__ = ["MAX_SCAN", "request_at", "wal_seqs_of"]

MAX_SCAN = 10_000  # records of the agent's stream read, newest first, before giving up


async def _get(js: JetStreamContext, stream: str, seq: int) -> Any:
    try:
        return await js.get_msg(stream, seq=seq, direct=True)
    except JsNotFoundError:
        return None
    except nats.errors.Error as err:
        raise StorageError(f"cannot read {stream} at {seq}") from err


async def wal_seqs_of(
    js: JetStreamContext, agent: str, request_ids: set[str], *, max_scan: int = MAX_SCAN
) -> dict[str, int]:
    """The WAL sequence of each of ``request_ids`` that ``agent`` answered recently."""
    found: dict[str, int] = {}
    if not request_ids:
        return found
    stream = layout.events_stream(agent)
    try:
        info = await js.stream_info(stream)
    except JsNotFoundError:
        return found
    except nats.errors.Error as err:
        raise StorageError(f"cannot read {stream}") from err
    seq, first = info.state.last_seq, max(1, info.state.first_seq, info.state.last_seq - max_scan)
    while seq >= first and len(found) < len(request_ids):
        msg = await _get(js, stream, seq)
        seq -= 1
        headers = dict(msg.headers or {}) if msg is not None else {}
        request_id = headers.get(H_REQUEST)
        if request_id in request_ids and H_WAL in headers:
            found.setdefault(request_id, int(headers[H_WAL]))
    return found


async def request_at(js: JetStreamContext, wal_seq: int) -> Step | None:
    """The command and data of WAL record ``wal_seq`` (None if it is gone)."""
    msg = await _get(js, layout.WAL_STREAM, wal_seq)
    if msg is None:
        return None
    headers = dict(msg.headers or {})
    encoding = Encoding.MSGPACK if "msgpack" in headers.get(CONTENT_TYPE, "") else Encoding.JSON
    data = decode(msg.data, encoding) if msg.data else None
    return Step(command=headers.get(CE_TYPE, ""), data=data)
