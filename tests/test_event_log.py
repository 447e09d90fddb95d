"""The event-log contract: appends, optimistic concurrency, atomic batches, fences, replay.

Every test runs against each implementation of :class:`o_bus.store.event_log.EventLog`: the
in-memory one and the JetStream one on a real nats-server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError
from support import collect_events

from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import ConcurrencyError, ErrorCode
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
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.memory_event_log import InMemoryEventLog, MemoryStream
from o_bus.store.provision import provision

REPLAY_GUARD = 5.0  # replay of a few events finishing is expected; this only turns a hang red
LogFactory = Callable[[str], EventLog]


@pytest.fixture(params=["memory", "jetstream"])
async def new_log(request: pytest.FixtureRequest) -> AsyncIterator[LogFactory]:
    """Makes a log of an agent; logs of the same agent share its stream, as on a server."""
    if request.param == "memory":
        streams: dict[str, MemoryStream] = {}

        def in_memory(agent: str) -> EventLog:
            return InMemoryEventLog(agent, streams.setdefault(agent, MemoryStream()))

        yield in_memory
        return
    url = request.getfixturevalue("nats_url")
    async with connect(url, "test-event-log") as (nc, js):
        await provision(js, StorageConfig(storage="file"))

        def on_jetstream(agent: str) -> EventLog:
            return JetStreamEventLog(nc, js, agent)

        yield on_jetstream


def new_event(agent: str, seq: int, writer: str = "w", by: int = 1, wal: int = 0) -> NewEvent:
    headers = event_headers(
        agent, seq, "incremented", 1, f"{writer}-{seq}", wal, "1.0.0", utc_now()
    )
    return NewEvent(json.dumps({"by": by}).encode(), headers)


def events(agent: str, first: int, count: int, writer: str = "w") -> list[NewEvent]:
    return [new_event(agent, seq, writer, by=seq) for seq in range(first, first + count)]


async def stored(log: EventLog) -> list[tuple[int, str]]:
    """(ce-sequence, writer) of every event in the log."""
    return [(e.seq, (e.request_id or "").split("-")[0]) for e in await collect_events(log)]


# -- appends --------------------------------------------------------------------------------------


async def test_empty_log_has_no_position(new_log: LogFactory) -> None:
    log = new_log("empty")
    end = await log.last_position()
    assert (end.seq, end.stream_seq, end.wal_seq) == (0, 0, 0)
    assert end == LogPosition()
    assert await log.event_at_stream_seq(1) is None


async def test_append_single(new_log: LogFactory) -> None:
    log = new_log("single")
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
    assert await stored(new_log("single")) == [(1, "w"), (2, "w")]


async def test_append_batch(new_log: LogFactory) -> None:
    log = new_log("batch")
    last = await log.append(0, events("batch", 1, 5))
    position = await log.last_position()
    assert position.seq == 5
    assert position.stream_seq == last
    last = await log.append(last, events("batch", 6, 3))
    assert (await log.last_position()).seq == 8
    assert [seq for seq, _ in await stored(new_log("batch"))] == list(range(1, 9))


async def test_append_largest_batch(new_log: LogFactory) -> None:
    log = new_log("big")
    await log.append(0, events("big", 1, 1000))
    assert (await log.last_position()).seq == 1000
    replayed = await collect_events(log)
    assert [e.seq for e in replayed] == list(range(1, 1001))


async def test_append_nothing_writes_nothing(new_log: LogFactory) -> None:
    log = new_log("nothing")
    assert await log.append(0, []) == 0
    assert await log.last_position() == LogPosition()


async def test_event_at_stream_seq_of_another_agent(new_log: LogFactory) -> None:
    mine, theirs = new_log("mine"), new_log("theirs")
    their_seq = await theirs.append(0, [new_event("theirs", 1)])
    assert await mine.event_at_stream_seq(their_seq) is None
    assert await mine.event_at_stream_seq(their_seq + 100) is None
    found = await theirs.event_at_stream_seq(their_seq)
    assert found is not None
    assert found.seq == 1


# -- optimistic concurrency ----------------------------------------------------------------


async def test_stale_writer_gets_concurrency_error(new_log: LogFactory) -> None:
    first, second = new_log("shared"), new_log("shared")
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

    assert await stored(new_log("shared")) == [(seq, "a") for seq in range(1, 6)]


async def test_racing_writers_never_interleave(new_log: LogFactory) -> None:
    count = 30

    async def writer(name: str) -> str:
        log, last = new_log("race"), 0
        for seq in range(1, count + 1):
            try:
                last = await log.append(last, [new_event("race", seq, name)])
            except ConcurrencyError:
                return "lost"
        return "won"

    outcomes = await asyncio.gather(writer("a"), writer("b"), writer("c"))
    assert sorted(outcomes) == ["lost", "lost", "won"]
    winner = "abc"[outcomes.index("won")]
    assert await stored(new_log("race")) == [(seq, winner) for seq in range(1, count + 1)]


async def test_racing_batches_never_interleave(new_log: LogFactory) -> None:

    async def writer(name: str) -> str:
        try:
            await new_log("batches").append(0, events("batches", 1, 20, name))
        except ConcurrencyError:
            return "lost"
        return "won"

    outcomes = await asyncio.gather(*(writer(name) for name in "abcd"))
    assert outcomes.count("won") == 1
    winner = "abcd"[outcomes.index("won")]
    assert await stored(new_log("batches")) == [(seq, winner) for seq in range(1, 21)]


async def test_conflicting_batch_appends_nothing(new_log: LogFactory) -> None:
    log = new_log("atomic")
    last = await log.append(0, events("atomic", 1, 3, "a"))

    with pytest.raises(ConcurrencyError):
        await new_log("atomic").append(0, events("atomic", 1, 5, "b"))
    assert await stored(new_log("atomic")) == [(1, "a"), (2, "a"), (3, "a")]
    assert (await log.last_position()).seq == 3

    # The refused batch leaves nothing half-open: the rightful writer carries on.
    last = await log.append(last, events("atomic", 4, 4, "a"))
    assert await stored(new_log("atomic")) == [(seq, "a") for seq in range(1, 8)]
    assert (await log.last_position()).stream_seq == last


async def test_other_agents_do_not_conflict(new_log: LogFactory) -> None:
    one, two = new_log("one"), new_log("two")
    one_last = await one.append(0, [new_event("one", 1)])
    two_last = await two.append(0, [new_event("two", 1)])  # expected 0 on its own subject
    await one.append(one_last, [new_event("one", 2)])
    await two.append(two_last, events("two", 2, 2))
    assert [s for s, _ in await stored(new_log("one"))] == [1, 2]
    assert [s for s, _ in await stored(new_log("two"))] == [1, 2, 3]


# -- replay ---------------------------------------------------------------------------------------


async def interleaved(new_log: LogFactory) -> tuple[EventLog, list[int], list[int]]:
    """Ten events of "main" interleaved with ten outcome records (requests that produced no
    event) in the same stream; returns the stream seqs of both."""
    main = new_log("main")
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


async def test_replay_of_an_empty_log(new_log: LogFactory) -> None:
    calls: list[StoredEvent] = []
    assert await new_log("nobody").replay(calls.append) == 0
    assert calls == []


async def test_replay_streams_in_order(new_log: LogFactory) -> None:
    main, stream_seqs, _ = await interleaved(new_log)
    seen: list[StoredEvent] = []
    assert await main.replay(seen.append) == 10
    assert [e.seq for e in seen] == list(range(1, 11))
    assert [e.stream_seq for e in seen] == stream_seqs
    assert all(e.agent == "main" for e in seen)
    assert [json.loads(e.data)["by"] for e in seen] == list(range(1, 11))


async def test_replay_bounds(new_log: LogFactory) -> None:
    main, s, _ = await interleaved(new_log)

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


async def test_replay_stops_when_told(new_log: LogFactory) -> None:
    main, _, _ = await interleaved(new_log)
    seen: list[int] = []

    def until_four(event: StoredEvent) -> bool:
        seen.append(event.seq)
        return event.seq >= 4

    assert await main.replay(until_four) == 4
    assert seen == [1, 2, 3, 4]


async def test_replay_surfaces_callback_errors(new_log: LogFactory) -> None:
    main, _, _ = await interleaved(new_log)

    def explode(event: StoredEvent) -> None:
        if event.seq == 3:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await main.replay(explode)
    # The failed replay left no consumer behind that would break the next one.
    assert len(await collect_events(main)) == 10


async def test_replay_ignores_events_appended_after_it_started(
    new_log: LogFactory,
) -> None:
    log = new_log("growing")
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


async def test_replay_follow_sees_new_events(new_log: LogFactory) -> None:
    log = new_log("followed")
    last = await log.append(0, events("followed", 1, 2))
    seen: list[int] = []

    def on_event(event: StoredEvent) -> bool:
        seen.append(event.seq)
        return event.seq >= 4

    follower = asyncio.create_task(log.replay(on_event, follow=True))
    await log.append(last, events("followed", 3, 2))
    assert await asyncio.wait_for(follower, REPLAY_GUARD * 6) == 4
    assert seen == [1, 2, 3, 4]


async def test_replay_never_passes_the_until_bound(new_log: LogFactory) -> None:
    main, main_seqs, noise_seqs = await interleaved(new_log)
    bound = noise_seqs[3]  # between main's 4th and 5th event
    assert main_seqs[3] < bound < main_seqs[4]
    seen = await asyncio.wait_for(collect_events(main, until_stream_seq=bound), REPLAY_GUARD)
    assert [e.seq for e in seen] == [1, 2, 3, 4]


async def test_replay_until_beyond_the_end_returns(new_log: LogFactory) -> None:
    main, _, noise_seqs = await interleaved(new_log)
    seen = await asyncio.wait_for(
        collect_events(main, until_stream_seq=noise_seqs[-1]), REPLAY_GUARD
    )
    assert [e.seq for e in seen] == list(range(1, 11))


# -- fences and records of a request ------------------------------------------------------------


async def test_fence_refuses_a_writer_that_has_not_seen_it(new_log: LogFactory) -> None:
    old, new = new_log("fenced"), new_log("fenced")
    last = await old.append(0, events("fenced", 1, 2))
    fence = await new.fence(last, "standby-1", wal_seq=7)
    assert fence > last
    with pytest.raises(ConcurrencyError):
        await old.append(last, [new_event("fenced", 3, "old")])
    with pytest.raises(ConcurrencyError):
        await new.fence(last, "standby-2", wal_seq=7)  # a fence is an append like any other
    end = await new.last_position()
    assert (end.seq, end.guard_seq, end.wal_seq) == (2, fence, 7)
    assert await new.event_at_stream_seq(fence) is None
    after = await new.append(end.guard_seq, [new_event("fenced", 3, "new")])
    assert await stored(new) == [(1, "w"), (2, "w"), (3, "new")]
    assert [e.stream_seq for e in await collect_events(new)][-1] == after


class LaggingReplica:
    """A JetStream context whose direct gets are answered by a replica that has not yet got
    the records in ``missing`` (a direct get may be served by any replica)."""

    def __init__(self, js: JetStreamContext, missing: set[int]) -> None:
        self.js, self.missing = js, missing

    async def get_msg(self, stream: str, seq: int | None = None, **options: Any) -> Any:
        if options.get("direct") and seq in self.missing:
            raise JsNotFoundError
        return await self.js.get_msg(stream, seq, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.js, name)


async def test_records_for_wal_reads_from_the_leader_what_a_replica_lacks(
    nats_url: str,
) -> None:
    async with connect(nats_url, "test-lagging-replica") as (nc, js):
        await provision(js, StorageConfig(storage="file"))
        log = JetStreamEventLog(nc, js, "lagging")
        last = 0
        for seq in range(1, 9):
            last = await log.append(last, [new_event("lagging", seq, wal=seq * 10)])
        # The search probes record 4 first; taken for missing, it would look after it.
        lagging: Any = LaggingReplica(js, missing={4, 2, 3})
        behind = JetStreamEventLog(nc, lagging, "lagging")
        [found] = await behind.records_for_wal(30)
        assert found.headers["ce-sequence"] == "3"
        assert await behind.records_for_wal(35) == []


async def test_records_for_wal_finds_events_and_outcomes(new_log: LogFactory) -> None:
    log = new_log("walled")
    last = await log.append(0, [new_event("walled", 1, wal=3)])
    two = [new_event("walled", 2, wal=5), new_event("walled", 3, wal=5)]
    last = await log.append(last, two, atomic=True)
    outcome = NewEvent(
        b"", outcome_headers("r-9", 9, "rejected", "command_rejected", "no"), "o.outcome.walled"
    )
    await log.append(last, [outcome])
    assert [int(r.headers["ce-sequence"]) for r in await log.records_for_wal(5)] == [2, 3]
    [rejected] = await log.records_for_wal(9)
    assert rejected.subject == layout.outcome_subject("walled")
    assert rejected.headers["O-Error-Code"] == "command_rejected"
    assert await log.records_for_wal(4) == []
    assert await log.records_for_wal(10) == []
    end = await log.last_position()
    assert (end.seq, end.wal_seq) == (3, 9)
