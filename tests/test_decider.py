"""The decider with no server: a WAL record and a state -> records, reply and outcome; the
decision context handlers receive; the offline ``decide_requests``; the WAL record type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgpack
import pytest

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.context import DecisionContext, iso_time
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.queries import Query, QueryContext
from o_bus.agents.counter import CounterState, Increment, counter
from o_bus.agents.memory import Configure, Consolidate, MemoryState, Remember, memory
from o_bus.decision.decider import APPLIED, NOOP, REJECTED, Decided, Decider
from o_bus.errors import CommandRejected, ConfigurationError, ErrorCode
from o_bus.events.model import Command, Event, State
from o_bus.replay.decide import DUPLICATE, decide_requests
from o_bus.replay.history_file import RecordedHistory
from o_bus.wire.cloudevents import parse_request
from o_bus.wire.codec import Encoding
from o_bus.wire.headers import (
    CE_CODEVERSION,
    CE_ID,
    CE_REQUESTID,
    CE_SEQUENCE,
    CE_TIME,
    CE_TYPE,
    CE_WALSEQ,
    NATS_TIME_STAMP,
    O_ERROR_CODE,
    O_OUTCOME,
    O_ROUTE,
)
from o_bus.wire.wal_record import DuplicateQuery, WalRecord, nats_time_ns

ACCEPTED_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
HISTORIES = Path(__file__).parent / "data" / "histories" / "0.1.0"


def record(
    command: str,
    data: bytes = b"{}",
    request_id: str = "r-1",
    wal_seq: int = 7,
    accepted_ns: int = ACCEPTED_NS,
) -> WalRecord:
    return WalRecord(
        request_id, command, data, Encoding.JSON.value, wal_seq=wal_seq, accepted_ns=accepted_ns
    )


# -- an agent that uses the decision context -----------------------------------------------------


class LedgerState(State):
    entries: tuple[str, ...] = ()


class Note(Command):
    text: str


class Noted(Event):
    text: str
    at: str
    request_id: str


class Nothing(Command):
    pass


class Fail(Command):
    pass


class Refuse(Command):
    pass


class Entries(Query):
    pass


ledger: AgentDefinition[LedgerState] = AgentDefinition("ledger", state=LedgerState, version="2.0")


@ledger.command
def note(state: LedgerState, cmd: Note, ctx: DecisionContext) -> Noted:
    return Noted(text=cmd.text, at=ctx.timestamp, request_id=ctx.request_id)


@ledger.command
def nothing(state: LedgerState, cmd: Nothing) -> None:
    return None


@ledger.command
def fail(state: LedgerState, cmd: Fail) -> None:
    raise ZeroDivisionError("a bug")


@ledger.command
def refuse(state: LedgerState, cmd: Refuse) -> None:
    raise CommandRejected("not today")


@ledger.applies
def apply_noted(state: LedgerState, event: Noted) -> LedgerState:
    return state.model_copy(update={"entries": (*state.entries, event.text)})


@ledger.fitness
def entry_length(
    state: LedgerState, cmd: Command, events: Sequence[Event], ctx: DecisionContext
) -> float:
    return float(len(events)) + ctx.accepted_ns % 10


@ledger.query
def entries(ctx: QueryContext[LedgerState], q: Entries, asked: DecisionContext) -> dict[str, str]:
    return {"count": str(len(ctx.state.entries)), "by": asked.request_id}


# -- the decider ---------------------------------------------------------------------------------


def test_events_carry_the_time_the_wal_accepted_the_request() -> None:
    verdict = Decider("ledger-1", ledger).decide(
        ledger.initial_state(), 4, record("note", b'{"text": "hi"}')
    )
    assert verdict.outcome == APPLIED
    assert verdict.seq == 5
    assert verdict.state == LedgerState(entries=("hi",))
    (event,) = verdict.records
    assert event.headers[CE_TIME] == "2026-01-01T00:00:00.123456Z"
    assert event.headers[CE_SEQUENCE] == "5"
    assert event.headers[CE_REQUESTID] == "r-1"
    assert event.headers[CE_WALSEQ] == "7"
    assert event.headers[CE_CODEVERSION] == "2.0"
    assert event.headers[CE_ID] == "ledger-1:5"
    assert event.subject is None  # the agent's event subject
    data = verdict.reply["events"][0]["data"]
    assert data == {"text": "hi", "at": "2026-01-01T00:00:00.123456Z", "request_id": "r-1"}
    assert verdict.reply == {
        "ok": True,
        "agent": "ledger-1",
        "request_id": "r-1",
        "seq": 5,
        "events": [{"seq": 5, "type": "noted", "version": 1, "data": data}],
        "duplicate": False,
    }


def test_deciding_a_record_again_gives_the_same_records() -> None:
    decider = Decider("ledger", ledger)
    request = record("note", b'{"text": "same"}')
    first = decider.decide(ledger.initial_state(), 0, request)
    again = decider.decide(ledger.initial_state(), 0, request)
    assert [(r.body, r.headers, r.subject) for r in first.records] == [
        (r.body, r.headers, r.subject) for r in again.records
    ]
    later = decider.decide(ledger.initial_state(), 0, record("note", b'{"text": "same"}', "r-2"))
    assert later.records[0].headers[CE_REQUESTID] == "r-2"


def test_no_event_is_a_noop_outcome_record() -> None:
    state = LedgerState(entries=("a",))
    verdict = Decider("ledger", ledger).decide(state, 3, record("nothing"))
    assert verdict.outcome == NOOP
    assert (verdict.state, verdict.seq) == (state, 3)
    (outcome,) = verdict.records
    assert outcome.subject == "o.outcome.ledger"
    assert outcome.body == b""
    assert outcome.headers[O_OUTCOME] == "noop"
    assert verdict.reply["ok"]
    assert verdict.reply["events"] == []
    assert verdict.reply["seq"] == 3


@pytest.mark.parametrize(
    ("command", "data", "code", "crashed"),
    [
        ("refuse", b"{}", ErrorCode.COMMAND_REJECTED, False),
        ("note", b'{"text": 5}', ErrorCode.INVALID_PAYLOAD, False),
        ("note", b"{nope", ErrorCode.MALFORMED_REQUEST, False),
        ("teleport", b"{}", ErrorCode.UNKNOWN_COMMAND, False),
        ("fail", b"{}", ErrorCode.INTERNAL, True),
    ],
)
def test_a_refused_request_changes_nothing_and_says_why(
    command: str, data: bytes, code: ErrorCode, crashed: bool
) -> None:
    state = LedgerState(entries=("a",))
    verdict = Decider("ledger", ledger).decide(state, 3, record(command, data))
    assert verdict.outcome == REJECTED
    assert (verdict.state, verdict.seq, verdict.events) == (state, 3, [])
    assert verdict.error is not None
    assert verdict.error.code is code
    assert verdict.crashed is crashed
    (outcome,) = verdict.records
    assert outcome.headers[O_OUTCOME] == "rejected"
    assert outcome.headers[O_ERROR_CODE] == code.value
    assert verdict.reply["ok"] is False
    assert verdict.reply["error"]["code"] == code.value
    if crashed:
        assert isinstance(verdict.error.__cause__, ZeroDivisionError)


def test_a_bad_content_type_is_a_rejection_not_a_crash() -> None:
    request = WalRecord("r", "note", b"x", "text/csv", wal_seq=1, accepted_ns=1)
    verdict = Decider("ledger", ledger).decide(ledger.initial_state(), 0, request)
    assert verdict.error is not None
    assert verdict.error.code is ErrorCode.UNSUPPORTED_CONTENT_TYPE


def test_a_decision_taken_elsewhere_is_recorded_with_its_code_version() -> None:
    event = Noted(text="from canary", at="t", request_id="r-1")
    decided = Decided(ledger.decide(ledger.initial_state(), Nothing()), None, "3.0")
    decided.decision.events.append(event)  # type: ignore[union-attr]
    verdict = Decider("ledger", ledger).decide(ledger.initial_state(), 0, record("x"), decided)
    assert verdict.records[0].headers[CE_CODEVERSION] == "3.0"
    refused = Decided(None, CommandRejected("candidate says no"), "3.0")
    verdict = Decider("ledger", ledger).decide(ledger.initial_state(), 0, record("x"), refused)
    assert verdict.outcome == REJECTED
    assert verdict.reply["error"]["message"] == "candidate says no"


# -- the decision context --------------------------------------------------------------------------


def test_context_time_and_timestamp() -> None:
    context = DecisionContext("r", ACCEPTED_NS)
    assert context.time == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert context.timestamp == "2026-01-01T00:00:00.123456Z" == iso_time(ACCEPTED_NS)


@pytest.mark.parametrize(
    "unix_ns",
    [0, 999, 1_000_000_000 - 1, ACCEPTED_NS, ACCEPTED_NS + 10**9 - 1, ACCEPTED_NS + 10**9],
)
def test_iso_time_is_the_bus_time_format(unix_ns: int) -> None:
    moment = datetime.fromtimestamp(unix_ns // 10**9, UTC).replace(
        microsecond=unix_ns % 10**9 // 1000
    )
    expected = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert iso_time(unix_ns) == expected
    assert iso_time(unix_ns) == expected  # a second call, from the formatted second


def test_a_handler_that_declares_a_context_needs_one() -> None:
    with pytest.raises(ConfigurationError, match="needs a decision context"):
        ledger.decide(ledger.initial_state(), Note(text="x"))
    decided = ledger.decide(ledger.initial_state(), Note(text="x"), DecisionContext("q", 0))
    assert decided.events == [Noted(text="x", at="1970-01-01T00:00:00.000000Z", request_id="q")]
    # Handlers without the parameter keep working with or without a context.
    assert counter.decide(CounterState(), Increment(by=2)).state.value == 2
    assert counter.decide(CounterState(), Increment(by=2), DecisionContext("q", 0)).state.value == 2


def test_only_a_context_may_be_added_to_a_handler() -> None:
    agent: AgentDefinition[LedgerState] = AgentDefinition("x", state=LedgerState, version="1")
    with pytest.raises(ConfigurationError, match="optionally a DecisionContext"):

        @agent.command
        def extra(state: LedgerState, cmd: Note, other: int) -> None:
            return None


def test_fitness_and_queries_receive_the_context() -> None:
    context = DecisionContext("r", 13)
    assert ledger.score(ledger.initial_state(), Nothing(), [], context) == 3.0
    with pytest.raises(ConfigurationError):
        ledger.score(ledger.initial_state(), Nothing(), [])
    assert counter.score(CounterState(), Increment(), []) is None  # no fitness declared


async def test_queries_receive_the_context() -> None:
    view = QueryContext("ledger", LedgerState(entries=("a", "b")), 2, {})
    answer = await ledger.queries.run(view, Entries(), DecisionContext("q-9", 0))
    assert answer == {"count": "2", "by": "q-9"}


def test_the_memory_agent_reads_no_clock() -> None:
    decider = Decider("memory", memory)
    request = record("remember", b'{"text": "the red door"}')
    first = decider.decide(MemoryState(), 0, request)
    assert first.reply["events"][0]["data"]["item"]["at"] == "2026-01-01T00:00:00.123456Z"
    assert decider.decide(MemoryState(), 0, request).records[0].body == first.records[0].body
    configured = memory.decide(MemoryState(), Configure(max_age_seconds=60))
    remembered = memory.decide(configured.state, Remember(text="x"), DecisionContext("r", 0))
    later = DecisionContext("c", ACCEPTED_NS)  # the item is 56 years old by then
    (consolidated,) = memory.decide(remembered.state, Consolidate(), later).events
    assert consolidated.model_dump()["at"] == later.timestamp
    assert not memory.decide(remembered.state, Consolidate(), DecisionContext("c", 10**9)).events


# -- decide_requests: the offline counterpart ------------------------------------------------------


def test_decide_requests_folds_like_the_agent() -> None:
    requests = [
        record("increment", b'{"by": 2}', "a", 1),
        record("increment", b'{"by": "x"}', "b", 2),
        record("reset", b"{}", "c", 3),
        record("increment", b'{"by": 5}', "d", 4),
        record("increment", b'{"by": 2}', "a", 5),  # the same id again: not applied twice
    ]
    decided = decide_requests(counter, counter.initial_state(), requests)
    assert [o.outcome for o in decided.outcomes] == [APPLIED, REJECTED, APPLIED, APPLIED, DUPLICATE]
    assert decided.outcomes[1].error_code == ErrorCode.INVALID_PAYLOAD.value
    assert decided.outcomes[4].reply == {**decided.outcomes[0].reply, "duplicate": True}
    assert [o.wal_seq for o in decided.outcomes] == [1, 2, 3, 4, 5]
    assert decided.seq == 3
    events = [e for o in decided.outcomes for e in o.events]
    assert decided.state == counter.fold(counter.initial_state(), events)
    assert decided.state.value == 5


def test_decide_requests_continues_from_a_state() -> None:
    start = decide_requests(counter, counter.initial_state(), [record("increment", b'{"by": 4}')])
    more = decide_requests(
        counter, start.state, [record("increment", b'{"by": 1}', "z", 9)], seq=start.seq
    )
    assert isinstance(more.state, CounterState)
    assert (more.state.value, more.seq) == (5, 2)
    assert more.outcomes[0].reply["events"][0]["seq"] == 2


# -- the WAL record --------------------------------------------------------------------------------


def test_wal_record_round_trip_through_headers() -> None:
    envelope = parse_request(
        {
            "ce-id": "r-1",
            "ce-type": "increment",
            "ce-source": "test",
            "ce-specversion": "1.0",
            "Content-Type": "application/msgpack",
            "ce-subject": "s",
        },
        msgpack.packb({"by": 2}),
    )
    written = envelope.wal_record("_INBOX.x", route="2.0")
    headers = written.to_headers("counter:r-1")
    assert headers[O_ROUTE] == "2.0"
    read = WalRecord.from_headers(headers, envelope.data, 12, 34)
    assert read == WalRecord(
        "r-1",
        "increment",
        envelope.data,
        "application/msgpack",
        "test",
        "_INBOX.x",
        Encoding.MSGPACK,
        "2.0",
        None,
        "s",
        12,
        34,
    )
    assert WalRecord.from_headers(envelope.wal_record(None).to_headers("k"), b"").route is None


def test_a_stored_record_keeps_its_time_to_the_nanosecond() -> None:
    assert nats_time_ns("2026-01-01T00:00:00.123456789Z") == ACCEPTED_NS
    assert nats_time_ns("2026-01-01T00:00:00Z") == ACCEPTED_NS - 123_456_789
    assert nats_time_ns("2026-01-01T00:00:00.5Z") == ACCEPTED_NS - 123_456_789 + 500_000_000
    assert nats_time_ns(None) == 0
    stored = WalRecord.from_stored(
        3, {CE_ID: "r", CE_TYPE: "note", NATS_TIME_STAMP: "2026-01-01T00:00:00.123456789Z"}, None
    )
    assert (stored.wal_seq, stored.accepted_ns, stored.data) == (3, ACCEPTED_NS, b"")


def test_duplicate_query_round_trip() -> None:
    query = DuplicateQuery("r-1", 42, Encoding.MSGPACK)
    assert DuplicateQuery.from_headers(query.to_headers()) == query
    assert DuplicateQuery.from_headers({"O-Wal-Seq": "x"}) == DuplicateQuery("", 0)
    assert DuplicateQuery.from_headers(None) == DuplicateQuery("", 0)


# -- recorded histories -----------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["counter", "echo"])
def test_deciding_a_recorded_wal_again_gives_the_recorded_events(agent: str) -> None:
    history = RecordedHistory.load(HISTORIES / agent)
    definition = Catalogue.discover().get(agent)
    decided = decide_requests(definition, definition.initial_state(), history.wal, agent=agent)
    recorded = [
        (r.headers[CE_TYPE], json.loads(r.data), r.headers[CE_REQUESTID])
        for r in history.events
        if r.subject == f"o.evt.{agent}"
    ]
    offline = [
        (e.event_type, e.model_dump(mode="json"), o.request_id)
        for o in decided.outcomes
        for e in o.events
    ]
    assert recorded
    assert offline == recorded
    assert decided.seq == history.expected["seq"]
    assert decided.state.model_dump(mode="json") == history.expected["state"]
