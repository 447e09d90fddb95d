"""Deciding recorded requests offline: the live agent's decision path with no NATS.

``decide_requests`` feeds WAL records (:class:`~o_bus.wire.wal_record.WalRecord`, or the
recorded :class:`~o_bus.store.log_record.LogRecord` of a WAL stream, as golden histories
hold them) through the same
:class:`~o_bus.decision.Decider` the live agent uses, folding each request's events into the
state before the next one, as the agent does. A request id seen again is answered from the
earlier reply (``duplicate``), as the agent's reply cache does, never applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.decision.decider import DUPLICATE, Decider
from o_bus.events.model import Event, State
from o_bus.store.log_record import LogRecord
from o_bus.wire.wal_record import WalRecord, nats_time_ns

__all__ = ["DUPLICATE", "DecidedRequests", "RequestOutcome", "decide_requests", "wal_record_of"]


@dataclass(slots=True, frozen=True)
class RequestOutcome:
    """How one request was decided: ``applied``, ``noop``, ``rejected`` or ``duplicate``."""

    request_id: str
    wal_seq: int
    outcome: str
    events: tuple[Event, ...]
    reply: dict[str, Any]
    error_code: str | None = None


@dataclass(slots=True, frozen=True)
class DecidedRequests:
    """The outcome of each request in order, and the state and agent sequence after them."""

    outcomes: list[RequestOutcome]
    state: State
    seq: int


def wal_record_of(record: LogRecord) -> WalRecord:
    """The request a recorded WAL message holds (its stored time is when the WAL accepted it)."""
    return WalRecord.from_headers(
        record.headers, record.data, record.seq, nats_time_ns(record.time)
    )


def decide_requests(
    definition: AgentDefinition[Any],
    state: State,
    wal_records: Iterable[WalRecord | LogRecord],
    *,
    agent: str | None = None,
    seq: int = 0,
) -> DecidedRequests:
    """Decide ``wal_records`` in order from ``state`` (the agent at sequence ``seq``).

    ``agent`` names the instance in replies and event headers (the definition's name if
    not given)."""
    decider = Decider(agent or definition.name, definition)
    answered: dict[str, dict[str, Any]] = {}  # ok replies by request id
    outcomes: list[RequestOutcome] = []
    for item in wal_records:
        record = wal_record_of(item) if isinstance(item, LogRecord) else item
        earlier = answered.get(record.request_id)
        if earlier is not None:
            reply = {**earlier, "duplicate": True}
            outcomes.append(RequestOutcome(record.request_id, record.wal_seq, DUPLICATE, (), reply))
            continue
        verdict = decider.decide(state, seq, record)
        state, seq = verdict.state, verdict.seq
        if verdict.reply["ok"]:
            answered[record.request_id] = verdict.reply
        code = verdict.error.code.value if verdict.error is not None else None
        outcomes.append(
            RequestOutcome(
                record.request_id,
                record.wal_seq,
                verdict.outcome,
                tuple(verdict.events),
                verdict.reply,
                code,
            )
        )
    return DecidedRequests(outcomes, state, seq)
