"""The decider: a WAL record and the state before it -> the events, the reply, the outcome.

Pure: no I/O and no clock. The time an event carries is the time the WAL accepted its
request, so deciding the same record on the same state always gives the same records,
whether the live agent, a shadow, a canary or the offline replayer does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from o_bus.agent.context import DecisionContext, iso_time
from o_bus.agent.definition import AgentDefinition, Decision
from o_bus.errors import OBusError
from o_bus.events.model import Command, Event, State
from o_bus.store import layout
from o_bus.store.event_records import NewEvent, event_headers, outcome_headers
from o_bus.wire.codec import encoding_for
from o_bus.wire.reply import error_reply_from, ok_reply
from o_bus.wire.wal_record import WalRecord

__all__ = [
    "APPLIED",
    "DUPLICATE",
    "NOOP",
    "REJECTED",
    "Decided",
    "Decider",
    "Verdict",
    "command_of",
    "context_of",
    "decide_command",
]

APPLIED: Final = "applied"  # the request produced events
NOOP: Final = "noop"  # accepted, no event: an outcome record is its only write
REJECTED: Final = "rejected"  # refused (bad input, handler refusal, or a bug in agent code)
DUPLICATE: Final = "duplicate"  # an id answered before: the earlier reply again, nothing applied


def context_of(request: WalRecord) -> DecisionContext:
    return DecisionContext(request.request_id, request.accepted_ns)


def command_of(definition: AgentDefinition[Any], request: WalRecord) -> Command:
    """The record's data as ``definition``'s command, or ``InvalidRequestError``."""
    return definition.parse_command(
        request.command, request.data, encoding_for(request.content_type)
    )


def decide_command(
    definition: AgentDefinition[Any],
    state: State,
    request: WalRecord,
    command: Command | None = None,
) -> tuple[Command, Decision[Any]]:
    """Parse the record's data into its command (unless given, already parsed) and run the
    handler with the record's decision context. Raises ``OBusError`` when the request is
    refused, and whatever the agent code raises."""
    if command is None:
        command = command_of(definition, request)
    return command, definition.decide(state, command, context_of(request))


class Decided:
    """A decision taken elsewhere (by a canary's code): a Decision, or a rejection to report,
    and the code version that took it."""

    __slots__ = ("code_version", "decision", "rejection")

    def __init__(
        self, decision: Decision[Any] | None, rejection: OBusError | None, code_version: str
    ) -> None:
        self.decision = decision
        self.rejection = rejection
        self.code_version = code_version


@dataclass(slots=True)
class Verdict:
    """What deciding one request gives: the records to append (events, or one outcome record),
    the reply to send once they are durable, and the state and agent sequence after them."""

    outcome: str  # APPLIED, NOOP, REJECTED (or DUPLICATE, decided from a reply cache)
    records: list[NewEvent]
    reply: dict[str, Any]
    state: State
    seq: int
    events: list[Event] = field(default_factory=list)
    error: OBusError | None = None
    crashed: bool = False  # the agent code raised something other than an OBusError


class Decider:
    """Decides the requests of agent ``agent`` with ``definition``."""

    __slots__ = ("agent", "definition", "outcome_subject")

    def __init__(self, agent: str, definition: AgentDefinition[Any]) -> None:
        self.agent = agent
        self.definition = definition
        self.outcome_subject = layout.outcome_subject(agent)

    def decide(
        self, state: State, seq: int, request: WalRecord, decided: Decided | None = None
    ) -> Verdict:
        """Decide ``request`` on ``state`` (the agent at sequence ``seq``); with ``decided``,
        take that decision instead of running the handler. Never raises."""
        code_version = self.definition.version
        try:
            if decided is None:
                decision = decide_command(self.definition, state, request)[1]
            elif decided.rejection is not None:
                raise decided.rejection
            else:
                assert decided.decision is not None
                decision = decided.decision
                code_version = decided.code_version
        except OBusError as err:
            return self.rejected(state, seq, request, err)
        except Exception as err:  # a bug in agent code must not stop the agent
            failure = OBusError(f"agent code raised {type(err).__name__}: {err}")
            failure.__cause__ = err  # for the log of whoever runs the decider
            return self.rejected(state, seq, request, failure, crashed=True)
        return self._applied(seq, request, decision, code_version)

    def _applied(
        self, seq: int, request: WalRecord, decision: Decision[Any], code_version: str
    ) -> Verdict:
        agent, request_id, wal_seq = self.agent, request.request_id, request.wal_seq
        events = decision.events
        if not events:  # the outcome is still recorded, for fencing and recovery
            record = NewEvent(b"", outcome_headers(request_id, wal_seq, NOOP), self.outcome_subject)
            reply = ok_reply(agent, request_id, seq, [])
            return Verdict(NOOP, [record], reply, decision.state, seq)
        records: list[NewEvent] = []
        out: list[dict[str, Any]] = []
        at = iso_time(request.accepted_ns)
        for event in events:
            seq += 1
            event_type, version = event.event_type, event.event_version
            headers = event_headers(
                agent,
                seq,
                event_type,
                version,
                request_id,
                wal_seq,
                code_version,
                at,
                request.traceparent,
                request.tracestate,
            )
            records.append(NewEvent(event.model_dump_json().encode(), headers))
            out.append(
                {
                    "seq": seq,
                    "type": event_type,
                    "version": version,
                    "data": event.model_dump(mode="json"),
                }
            )
        reply = ok_reply(agent, request_id, seq, out)
        return Verdict(APPLIED, records, reply, decision.state, seq, list(events))

    def rejected(
        self,
        state: State,
        seq: int,
        request: WalRecord,
        err: OBusError,
        *,
        crashed: bool = False,
    ) -> Verdict:
        """The verdict on a refused request: nothing changes; its outcome record says why."""
        request_id = request.request_id
        headers = outcome_headers(request_id, request.wal_seq, REJECTED, err.code, err.message)
        record = NewEvent(b"", headers, self.outcome_subject)
        reply = error_reply_from(self.agent, request_id, err)
        return Verdict(REJECTED, [record], reply, state, seq, error=err, crashed=crashed)
