"""Deciding recorded requests offline: the live agent's decision path with no NATS.

``decide_requests`` feeds WAL records (read from a stream or recorded) through the same
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
from o_bus.wire.wal_record import WalRecord

__all__ = ["DUPLICATE", "DecidedRequests", "RequestOutcome", "decide_requests"]


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


def decide_requests(
    definition: AgentDefinition[Any],
    state: State,
    wal_records: Iterable[WalRecord],
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
    for record in wal_records:
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
