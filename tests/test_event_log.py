"""An agent's event log on JetStream: appends, optimistic concurrency, atomic batches, replay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import collect_events, read_subject

from o_bus.config import StorageConfig
from o_bus.errors import ConcurrencyError, ErrorCode
from o_bus.runtime.connect import connect
from o_bus.store import layout
from o_bus.store.event_log import (
    EventLog,
    LogPosition,
    NewEvent,
    StoredEvent,
    event_headers,
    outcome_headers,
    utc_now,
)
from o_bus.store.provision import provision

REPLAY_GUARD = 5.0  # replay of a few events finishing is expected; this only turns a hang red


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    async with connect(nats_url, "test-event-log") as (nc, js):
        await provision(js, StorageConfig(storage="file"))
        yield nc, js


def new_event(agent: str, seq: int, writer: str = "w", by: int = 1, wal: int = 0) -> NewEvent:
    headers = event_headers(
        agent, seq, "incremented", 1, f"{writer}-{seq}", wal, "1.0.0", utc_now()
    )
    return NewEvent(json.dumps({"by": by}).encode(), headers)


def events(agent: str, first: int, count: int, writer: str = "w") -> list[NewEvent]:
    return [new_event(agent, seq, writer, by=seq) for seq in range(first, first + count)]


async def stored(js: JetStreamContext, agent: str) -> list[tuple[int, str]]:
    """(ce-sequence, writer) of every message on the agent's subject, read without a consumer."""
    found = []
    for msg in await read_subject(js, layout.events_stream(agent), layout.event_subject(agent)):
        headers = msg.headers or {}
        found.append((int(headers["ce-sequence"]), headers["ce-requestid"].split("-")[0]))
    return found


# -- appends --------------------------------------------------------------------------------------


async def test_empty_log_has_no_position(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "empty")
    end = await log.last_position()
    assert (end.seq, end.stream_seq, end.wal_seq) == (0, 0, 0)
    assert end == LogPosition()
    assert await log.event_at_stream_seq(1) is None


async def test_append_single(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "single")
    first = await log.append(0, [new_event("single", 1, wal=11)])
    second = await log.append(first, [new_event("single", 2, wal=12)])
    assert second > first
    end = await log.last_position()
    assert (end.seq, end.stream_seq, end.wal_seq) == (2, second, 12)
    event = await log.event_at_stream_seq(first)
    assert event is not None
    assert (event.agent, event.seq, event.type, event.version) == ("single", 1, "incremented", 1)
    assert (event.request_id, event.wal_seq, event.code_version) == ("w-1", 11, "1.0.0")
    assert event.as_dict()["data"] == {"by": 1}
    assert await stored(js, "single") == [(1, "w"), (2, "w")]


async def test_append_batch(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "batch")
    last = await log.append(0, events("batch", 1, 5))
    position = await log.last_position()
    assert position.seq == 5
    assert position.stream_seq == last
    last = await log.append(last, events("batch", 6, 3))
    assert (await log.last_position()).seq == 8
    assert [seq for seq, _ in await stored(js, "batch")] == list(range(1, 9))


async def test_append_largest_batch(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "big")
    await log.append(0, events("big", 1, 1000))
    assert (await log.last_position()).seq == 1000
    replayed = await collect_events(log)
    assert [e.seq for e in replayed] == list(range(1, 1001))


async def test_append_nothing_writes_nothing(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "nothing")
    assert await log.append(0, []) == 0
    assert await log.last_position() == LogPosition()


async def test_event_at_stream_seq_of_another_agent(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    mine, theirs = EventLog(nc, js, "mine"), EventLog(nc, js, "theirs")
    their_seq = await theirs.append(0, [new_event("theirs", 1)])
    assert await mine.event_at_stream_seq(their_seq) is None
    assert await mine.event_at_stream_seq(their_seq + 100) is None
    found = await theirs.event_at_stream_seq(their_seq)
    assert found is not None
    assert found.seq == 1


# -- optimistic concurrency ----------------------------------------------------------------


async def test_stale_writer_gets_concurrency_error(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    first, second = EventLog(nc, js, "shared"), EventLog(nc, js, "shared")
    seen_by_second = (await second.last_position()).stream_seq  # 0: the log is empty

    last = 0
    for seq in range(1, 6):
        last = await first.append(last, [new_event("shared", seq, "a")])

    with pytest.raises(ConcurrencyError) as info:
        await second.append(seen_by_second, [new_event("shared", 1, "b")])
    assert info.value.code is ErrorCode.CONCURRENCY_CONFLICT
    assert info.value.agent == "shared"
    assert info.value.expected_last == 0

    # A writer that is one event behind is refused too.
    with pytest.raises(ConcurrencyError):
        await second.append(last - 1, [new_event("shared", 5, "b")])

    assert await stored(js, "shared") == [(seq, "a") for seq in range(1, 6)]


async def test_racing_writers_never_interleave(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    count = 30

    async def writer(name: str) -> str:
        log, last = EventLog(nc, js, "race"), 0
        for seq in range(1, count + 1):
            try:
                last = await log.append(last, [new_event("race", seq, name)])
            except ConcurrencyError:
                return "lost"
        return "won"

    outcomes = await asyncio.gather(writer("a"), writer("b"), writer("c"))
    assert sorted(outcomes) == ["lost", "lost", "won"]
    winner = "abc"[outcomes.index("won")]
    assert await stored(js, "race") == [(seq, winner) for seq in range(1, count + 1)]


async def test_racing_batches_never_interleave(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus

    async def writer(name: str) -> str:
        try:
            await EventLog(nc, js, "batches").append(0, events("batches", 1, 20, name))
        except ConcurrencyError:
            return "lost"
        return "won"

    outcomes = await asyncio.gather(*(writer(name) for name in "abcd"))
    assert outcomes.count("won") == 1
    winner = "abcd"[outcomes.index("won")]
    assert await stored(js, "batches") == [(seq, winner) for seq in range(1, 21)]


async def test_conflicting_batch_appends_nothing(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "atomic")
    last = await log.append(0, events("atomic", 1, 3, "a"))

    with pytest.raises(ConcurrencyError):
        await EventLog(nc, js, "atomic").append(0, events("atomic", 1, 5, "b"))
    assert await stored(js, "atomic") == [(1, "a"), (2, "a"), (3, "a")]
    assert (await log.last_position()).seq == 3

    # The refused batch leaves nothing half-open: the rightful writer carries on.
    last = await log.append(last, events("atomic", 4, 4, "a"))
    assert await stored(js, "atomic") == [(seq, "a") for seq in range(1, 8)]
    assert (await log.last_position()).stream_seq == last


async def test_other_agents_do_not_conflict(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    one, two = EventLog(nc, js, "one"), EventLog(nc, js, "two")
    one_last = await one.append(0, [new_event("one", 1)])
    two_last = await two.append(0, [new_event("two", 1)])  # expected 0 on its own subject
    await one.append(one_last, [new_event("one", 2)])
    await two.append(two_last, events("two", 2, 2))
    assert [s for s, _ in await stored(js, "one")] == [1, 2]
    assert [s for s, _ in await stored(js, "two")] == [1, 2, 3]


# -- replay ---------------------------------------------------------------------------------------


async def interleaved(nc: Client, js: JetStreamContext) -> tuple[EventLog, list[int], list[int]]:
    """Ten events of "main" interleaved with ten outcome records (requests that produced no
    event) in the same stream; returns the stream seqs of both."""
    main = EventLog(nc, js, "main")
    main_seqs, noise_seqs = [], []
    last = 0
    for seq in range(1, 11):
        last = await main.append(last, [new_event("main", seq, by=seq)])
        main_seqs.append(last)
        outcome = NewEvent(
            b"", outcome_headers(f"noop-{seq}", seq, "noop"), layout.outcome_subject("main")
        )
        last = await main.append(last, [outcome])
        noise_seqs.append(last)
    return main, main_seqs, noise_seqs


async def test_replay_of_an_empty_log(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    calls: list[StoredEvent] = []
    assert await EventLog(nc, js, "nobody").replay(calls.append) == 0
    assert calls == []


async def test_replay_streams_in_order(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, stream_seqs, _ = await interleaved(nc, js)
    seen: list[StoredEvent] = []
    assert await main.replay(seen.append) == 10
    assert [e.seq for e in seen] == list(range(1, 11))
    assert [e.stream_seq for e in seen] == stream_seqs
    assert all(e.agent == "main" for e in seen)
    assert [json.loads(e.data)["by"] for e in seen] == list(range(1, 11))


async def test_replay_bounds(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, s, _ = await interleaved(nc, js)

    async def seqs(after: int = 0, until: int | None = None) -> list[int]:
        return [
            e.seq
            for e in await collect_events(main, after_stream_seq=after, until_stream_seq=until)
        ]

    assert await seqs(after=s[2]) == list(range(4, 11))
    assert await seqs(until=s[6]) == list(range(1, 8))
    assert await seqs(after=s[2], until=s[6]) == [4, 5, 6, 7]
    assert await seqs(after=s[4], until=s[5]) == [6]
    assert await seqs(after=s[9]) == []
    assert await seqs(after=s[5], until=s[5]) == []
    assert await seqs(after=s[5], until=s[2]) == []
    # "after" need not be one of this agent's positions.
    assert await seqs(after=s[2] + 1) == list(range(4, 11))


async def test_replay_stops_when_told(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, _, _ = await interleaved(nc, js)
    seen: list[int] = []

    def until_four(event: StoredEvent) -> bool:
        seen.append(event.seq)
        return event.seq >= 4

    assert await main.replay(until_four) == 4
    assert seen == [1, 2, 3, 4]


async def test_replay_surfaces_callback_errors(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, _, _ = await interleaved(nc, js)

    def explode(event: StoredEvent) -> None:
        if event.seq == 3:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await main.replay(explode)
    # The failed replay left no consumer behind that would break the next one.
    assert len(await collect_events(main)) == 10


async def test_replay_ignores_events_appended_after_it_started(
    bus: tuple[Client, JetStreamContext],
) -> None:
    nc, js = bus
    log = EventLog(nc, js, "growing")
    last = await log.append(0, events("growing", 1, 3))
    seen: list[int] = []
    started = asyncio.Event()

    def on_event(event: StoredEvent) -> None:
        seen.append(event.seq)
        started.set()

    async def grow() -> None:
        await started.wait()  # the replay has fixed its end by now
        await log.append(last, events("growing", 4, 2))

    await asyncio.gather(log.replay(on_event), grow())
    assert seen == [1, 2, 3]
    assert [e.seq for e in await collect_events(log)] == [1, 2, 3, 4, 5]


async def test_replay_follow_sees_new_events(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    log = EventLog(nc, js, "followed")
    last = await log.append(0, events("followed", 1, 2))
    seen: list[int] = []

    def on_event(event: StoredEvent) -> bool:
        seen.append(event.seq)
        return event.seq >= 4

    follower = asyncio.create_task(log.replay(on_event, follow=True))
    await log.append(last, events("followed", 3, 2))
    assert await asyncio.wait_for(follower, REPLAY_GUARD * 6) == 4
    assert seen == [1, 2, 3, 4]


async def test_replay_never_passes_the_until_bound(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, main_seqs, noise_seqs = await interleaved(nc, js)
    bound = noise_seqs[3]  # between main's 4th and 5th event
    assert main_seqs[3] < bound < main_seqs[4]
    seen = await asyncio.wait_for(collect_events(main, until_stream_seq=bound), REPLAY_GUARD)
    assert [e.seq for e in seen] == [1, 2, 3, 4]


async def test_replay_until_beyond_the_end_returns(bus: tuple[Client, JetStreamContext]) -> None:
    nc, js = bus
    main, _, noise_seqs = await interleaved(nc, js)
    seen = await asyncio.wait_for(
        collect_events(main, until_stream_seq=noise_seqs[-1]), REPLAY_GUARD
    )
    assert [e.seq for e in seen] == list(range(1, 11))
