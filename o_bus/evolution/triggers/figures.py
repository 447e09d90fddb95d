"""The figures triggers are judged on, read from what the bus recorded.

- the last requests of an agent: its own stream's event and outcome records, newest first
  (a request with several events counts once), so error rates survive restarts;
- fitness of those requests: the agent's ``@fitness`` on the state before each request (rebuilt
  from the log), the command (from the WAL) and the events it produced, with its feedback;
- feedback: the ``O_FEEDBACK`` stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ErrorCode, OBusError, StorageError
from o_bus.evolution.feedback.fitness import score
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.event_records import H_REQUEST, H_SEQ, H_TYPE, H_VERSION, H_WAL
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.snapshots import SnapshotStore
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import CE_TYPE, CONTENT_TYPE, O_ERROR_CODE, O_OUTCOME

__all__ = ["ERROR_CODES", "RecentRequest", "error_rate", "recent_fitness", "recent_requests"]

# Crashes, timeouts, invalid events. Rejections by the agent's logic and bad client input are
# answers, not errors.
ERROR_CODES = frozenset({ErrorCode.INTERNAL.value, ErrorCode.UNAVAILABLE.value})


@dataclass(slots=True)
class RecentRequest:
    wal_seq: int
    request_id: str
    error_code: str | None = None  # set for a rejected outcome
    events: list[tuple[int, str, int, bytes]] = field(default_factory=list)  # seq, type, v, data

    @property
    def error(self) -> bool:
        return self.error_code in ERROR_CODES


async def _get(js: JetStreamContext, stream: str, seq: int) -> Any:
    try:
        return await js.get_msg(stream, seq=seq, direct=True)
    except JsNotFoundError:
        return None
    except nats.errors.Error as err:
        raise StorageError(f"cannot read {stream} at {seq}") from err


async def recent_requests(js: JetStreamContext, agent: str, window: int) -> list[RecentRequest]:
    """The last ``window`` requests ``agent`` recorded an outcome for, oldest first."""
    stream = layout.events_stream(agent)
    try:
        info = await js.stream_info(stream)
    except JsNotFoundError:
        return []
    except nats.errors.Error as err:
        raise StorageError(f"cannot read {stream}") from err
    by_wal: dict[int, RecentRequest] = {}
    seq = info.state.last_seq
    while seq >= max(1, info.state.first_seq) and len(by_wal) <= window:
        msg = await _get(js, stream, seq)
        seq -= 1
        headers = dict(msg.headers or {}) if msg is not None else {}
        if H_WAL not in headers or msg.subject == layout.fence_subject(agent):
            continue
        wal_seq = int(headers[H_WAL])
        entry = by_wal.setdefault(wal_seq, RecentRequest(wal_seq, headers.get(H_REQUEST, "")))
        if msg.subject == layout.outcome_subject(agent):
            if headers.get(O_OUTCOME) == "rejected":
                entry.error_code = headers.get(O_ERROR_CODE, ErrorCode.INTERNAL.value)
        else:
            kind, version = headers.get(H_TYPE, ""), int(headers.get(H_VERSION, "1"))
            entry.events.insert(0, (int(headers.get(H_SEQ, "0")), kind, version, msg.data or b""))
    ordered = sorted(by_wal.values(), key=lambda r: r.wal_seq)
    return ordered[-window:]


def error_rate(requests: list[RecentRequest]) -> tuple[int, int]:
    """(errors, requests) among ``requests``."""
    return sum(1 for r in requests if r.error), len(requests)


async def recent_fitness(
    nc: Client, js: JetStreamContext, definition: AgentDefinition[Any], agent: str, window: int
) -> list[float]:
    """``agent``'s fitness (by ``definition``) of each of its last ``window`` requests (those
    it can score)."""
    if definition.fitness_function is None:
        return []
    requests = [r for r in await recent_requests(js, agent, window) if r.error_code is None]
    first_seq = min((e[0] for r in requests for e in r.events), default=0)
    if not requests:
        return []
    log = JetStreamEventLog(nc, js, agent)
    before = first_seq - 1 if first_seq else None
    state = (await rebuild(definition, log, SnapshotStore(js), at_seq=before)).state
    feedback = await FeedbackLog(js).by_request(agent)
    scores: list[float] = []
    for request in requests:
        wal = await _get(js, layout.WAL_STREAM, request.wal_seq)
        if wal is None:
            continue
        headers = dict(wal.headers or {})
        try:
            encoding = (
                Encoding.MSGPACK if "msgpack" in headers.get(CONTENT_TYPE, "") else (Encoding.JSON)
            )
            command = definition.parse_command(headers.get(CE_TYPE, ""), wal.data, encoding)
            events = [definition.decode_event(t, v, d) for _, t, v, d in request.events]
            value = score(definition, state, command, events, feedback.get(request.request_id))
            state = definition.fold(state, events)
        except (OBusError, ValueError):
            continue  # a request this code cannot read is not scored
        if value is not None:
            scores.append(value)
    return scores
