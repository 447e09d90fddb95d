"""Rebuilding state: replay equals a plain fold, snapshots are shortcuts that never change the
answer, and a bad snapshot is skipped (with a warning) in favour of an older one or a replay."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import collect_events

from o_bus.agents.counter import CounterState, Incremented, ResetDone, counter
from o_bus.agents.echo import echo
from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.events.model import Event
from o_bus.replay.rebuild import Rebuilt, ReplayError, rebuild
from o_bus.store import layout
from o_bus.store.event_log import EventLog, NewEvent, StoredEvent, event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.store.snapshots import Snapshot, SnapshotStore

REBUILD_LOG = "o_bus.replay.rebuild"
Op = int | None  # an increment by that much, or None for a reset
Bus = tuple[Client, JetStreamContext]
_names = itertools.count(1)
SNAPSHOT_READ_ATTEMPTS = 8


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    async with connect(nats_url, "test-rebuild") as (nc, js):
        await provision(js, StorageConfig(storage="file"))
        yield nc, js


def expected_state(ops: Sequence[Op]) -> CounterState:
    """The counter's meaning, written out plainly: what folding ``ops`` must give."""
    value = increments = 0
    for op in ops:
        if op is None:
            value = 0
        else:
            value += op
            increments += 1
    return CounterState(value=value, increments=increments)


def as_events(ops: Sequence[Op]) -> list[Event]:
    events: list[Event] = []
    value = 0
    for op in ops:
        if op is None:
            events.append(ResetDone(previous=value))
            value = 0
        else:
            events.append(Incremented(by=op))
            value += op
    return events


async def write_history(
    bus: Bus, agent: str, ops: Sequence[Op], chunks: Sequence[int] = ()
) -> list[StoredEvent]:
    """Append ``ops`` as counter events, in batches of the given sizes (then one at a time)."""
    nc, js = bus
    log = JetStreamEventLog(nc, js, agent)
    events = as_events(ops)
    sizes = iter(chunks)
    last, seq = 0, 0
    while seq < len(events):
        size = max(1, next(sizes, 1))
        batch = []
        for event in events[seq : seq + size]:
            seq += 1
            headers = event_headers(
                agent,
                seq,
                event.event_type,
                event.event_version,
                f"r{seq}",
                seq,
                "1.0.0",
                utc_now(),
            )
            batch.append(NewEvent(event.model_dump_json().encode(), headers))
        last = await log.append(last, batch)
    return await collect_events(log)


def snapshot_at(agent: str, history: Sequence[StoredEvent], ops: Sequence[Op], k: int) -> Snapshot:
    return Snapshot(
        agent=agent,
        definition="counter",
        seq=k,
        stream_seq=history[k - 1].stream_seq if k else 0,
        wal_seq=history[k - 1].wal_seq if k else 0,
        code_version="1.0.0",
        state_schema_version=1,
        taken_at=utc_now(),
        state=expected_state(ops[:k]).model_dump(mode="json"),
    )


def log_of(bus: Bus, agent: str) -> EventLog:
    return JetStreamEventLog(bus[0], bus[1], agent)


async def rebuild_reading_snapshots(
    log: EventLog,
    store: SnapshotStore,
    caplog: pytest.LogCaptureFixture | None = None,
    **kwargs: Any,
) -> Rebuilt:
    """``rebuild`` with snapshots (``caplog`` is cleared first so warnings are this call's)."""
    if caplog is not None:
        caplog.clear()
    return await rebuild(counter, log, store, **kwargs)


ops_strategy = st.lists(
    st.one_of(st.integers(min_value=-(10**9), max_value=10**9), st.none()),
    min_size=0,
    max_size=60,
)


# -- properties ----------------------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    # One server for all examples: each example writes its own agent, so they cannot interfere.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=ops_strategy, chunks=st.lists(st.integers(1, 25), max_size=10), data=st.data())
async def test_rebuild_at_seq_equals_folding_the_prefix(
    bus: Bus, ops: list[Op], chunks: list[int], data: st.DataObject
) -> None:
    agent = f"prop-{next(_names)}"
    history = await write_history(bus, agent, ops, chunks)
    assert [e.seq for e in history] == list(range(1, len(ops) + 1))
    log = log_of(bus, agent)

    full = await rebuild(counter, log, SnapshotStore(bus[1]))
    assert full.state == expected_state(ops)
    assert full.state == counter.fold(counter.initial_state(), as_events(ops))
    assert full.position.seq == len(ops)
    assert full.replayed == len(ops)

    for n in data.draw(st.lists(st.integers(0, len(ops)), min_size=1, max_size=4), label="at"):
        at = await rebuild(counter, log, None, at_seq=n)
        assert at.state == expected_state(ops[:n]), n
        assert at.position.seq == n
        if n:
            assert at.position.stream_seq == history[n - 1].stream_seq

    beyond = await rebuild(counter, log, None, at_seq=len(ops) + 5)
    assert beyond.state == full.state


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_strategy.filter(bool), data=st.data())
async def test_snapshot_plus_tail_equals_full_replay(
    bus: Bus, ops: list[Op], data: st.DataObject
) -> None:
    agent = f"snap-{next(_names)}"
    history = await write_history(bus, agent, ops, [len(ops)])
    log, store = log_of(bus, agent), SnapshotStore(bus[1])
    without = await rebuild(counter, log, None)

    k = data.draw(st.integers(1, len(ops)), label="snapshot at")
    await store.save(snapshot_at(agent, history, ops, k))
    with_snapshot = await rebuild_reading_snapshots(log, store)
    assert with_snapshot.state == without.state == expected_state(ops)
    assert with_snapshot.position == without.position
    assert with_snapshot.snapshot is not None
    assert with_snapshot.snapshot.seq == k
    assert with_snapshot.replayed == len(ops) - k

    # Points in history before the snapshot cannot use it; points after it can.
    n = data.draw(st.integers(0, len(ops)), label="at")
    at = await rebuild_reading_snapshots(log, store, at_seq=n)
    assert at.state == expected_state(ops[:n])
    assert (at.snapshot is not None) == (n >= k)


# -- a fixed history for the snapshot cases ----------------------------------------------

OPS: list[Op] = [5, 3, -2, None, 7, 10, 1, None, 4, 4, 2, -9]


async def fixed_history(bus: Bus) -> tuple[str, list[StoredEvent], EventLog, SnapshotStore]:
    agent = f"fixed-{next(_names)}"
    history = await write_history(bus, agent, OPS, [3, 1, 4, 4])
    return agent, history, log_of(bus, agent), SnapshotStore(bus[1])


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == REBUILD_LOG and r.levelno == logging.WARNING and "skipping" in r.getMessage()
    ]


def mutated(snapshot: Snapshot, **changes: Any) -> bytes:
    """The snapshot's encoding with some fields of the stored document changed afterwards."""
    doc = json.loads(snapshot.encode())
    doc.update(changes)
    return json.dumps(doc).encode()


async def test_rebuild_of_an_agent_without_events(bus: Bus) -> None:
    rebuilt = await rebuild(counter, log_of(bus, "never-used"), SnapshotStore(bus[1]))
    assert rebuilt.state == CounterState()
    assert rebuilt.position.seq == 0
    assert rebuilt.replayed == 0
    assert rebuilt.snapshot is None


async def test_valid_snapshot_is_used_silently(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    agent, history, log, store = await fixed_history(bus)
    await store.save(snapshot_at(agent, history, OPS, 6))
    with caplog.at_level(logging.WARNING):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.state == expected_state(OPS)
    assert rebuilt.snapshot is not None
    assert rebuilt.snapshot.seq == 6
    assert rebuilt.replayed == len(OPS) - 6
    assert skipped(caplog) == []


async def test_snapshot_at_the_end_replays_nothing(bus: Bus) -> None:
    agent, history, log, store = await fixed_history(bus)
    await store.save(snapshot_at(agent, history, OPS, len(OPS)))
    rebuilt = await rebuild_reading_snapshots(log, store)
    assert rebuilt.state == expected_state(OPS)
    assert rebuilt.replayed == 0
    at = await rebuild_reading_snapshots(log, store, at_seq=len(OPS))
    assert (at.state, at.replayed) == (expected_state(OPS), 0)


CORRUPTIONS: dict[str, Any] = {
    "garbage-bytes": lambda snap: b"\x00\xffnot a snapshot\x13",
    "not-utf8-json": lambda snap: snap.encode().replace(b'"state"', b'"st\xffate"'),
    "json-array": lambda snap: b"[1, 2, 3]",
    "empty-object": lambda snap: b"{}",
    "truncated": lambda snap: snap.encode()[:-7],
    "checksum-mismatch": lambda snap: mutated(snap, state={**snap.state, "value": 424242}),
    "unknown-format": lambda snap: mutated(snap, format=99),
    "seq-not-a-number": lambda snap: mutated(snap, seq="twelve"),
    "state-fails-validation": lambda snap: replace(snap, state={"value": "many"}).encode(),
    "state-has-extra-field": lambda snap: replace(snap, state={**snap.state, "x": 1}).encode(),
    "state-not-an-object": lambda snap: replace(snap, state=[1, 2]).encode(),
    "other-agent": lambda snap: replace(snap, agent="someone-else").encode(),
    "other-definition": lambda snap: replace(snap, definition="echo").encode(),
    "other-schema-version": lambda snap: replace(snap, state_schema_version=2).encode(),
    "position-beyond-the-log": lambda snap: replace(snap, stream_seq=10**6).encode(),
    "position-of-another-event": lambda snap: replace(
        snap, stream_seq=snap.stream_seq - 1
    ).encode(),
    "seq-beyond-the-log": lambda snap: replace(snap, seq=snap.seq + 50).encode(),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
async def test_corrupt_snapshot_is_skipped(
    bus: Bus, caplog: pytest.LogCaptureFixture, corruption: str
) -> None:
    agent, history, log, store = await fixed_history(bus)
    good = snapshot_at(agent, history, OPS, 9)
    await store.put_raw(agent, CORRUPTIONS[corruption](good))
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.snapshot is None
    assert rebuilt.state == expected_state(OPS)
    assert rebuilt.replayed == len(OPS)
    assert rebuilt.position.seq == len(OPS)
    warnings = skipped(caplog)
    assert len(warnings) == 1
    assert agent in warnings[0]


async def test_snapshot_pointing_at_a_different_event_is_skipped(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    agent, history, log, store = await fixed_history(bus)
    forged = replace(snapshot_at(agent, history, OPS, 3), stream_seq=history[1].stream_seq)
    await store.save(forged)
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.snapshot is None
    assert rebuilt.state == expected_state(OPS)
    assert len(skipped(caplog)) == 1


async def test_snapshot_at_seq_zero_with_a_position_inside_the_log_is_skipped(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    agent, history, log, store = await fixed_history(bus)
    forged = replace(snapshot_at(agent, history, OPS, 0), stream_seq=history[4].stream_seq)
    await store.save(forged)
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.state == expected_state(OPS)
    assert rebuilt.replayed == len(OPS)


async def test_older_valid_snapshot_is_used_when_newer_ones_are_corrupt(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    agent, history, log, store = await fixed_history(bus)
    await store.save(snapshot_at(agent, history, OPS, 4))
    await store.put_raw(agent, b"garbage")
    await store.put_raw(agent, mutated(snapshot_at(agent, history, OPS, 10), sha256="0" * 64))
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.snapshot is not None
    assert rebuilt.snapshot.seq == 4
    assert rebuilt.replayed == len(OPS) - 4
    assert rebuilt.state == expected_state(OPS)
    assert len(skipped(caplog)) == 2


async def test_snapshots_newer_than_the_point_asked_for_are_passed_over(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    agent, history, log, store = await fixed_history(bus)
    for k in (2, 5, 8, 11):
        await store.save(snapshot_at(agent, history, OPS, k))
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        for n, used in [(1, None), (2, 2), (4, 2), (5, 5), (7, 5), (10, 8), (12, 11)]:
            rebuilt = await rebuild_reading_snapshots(log, store, caplog, at_seq=n)
            assert rebuilt.state == expected_state(OPS[:n]), n
            assert (rebuilt.snapshot.seq if rebuilt.snapshot else None) == used, n
    assert skipped(caplog) == []  # passing over a newer snapshot is not a defect


async def test_only_corrupt_snapshots_means_full_replay(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    agent, history, log, store = await fixed_history(bus)
    await store.save(snapshot_at(agent, history, OPS, 3))
    for _ in range(5):  # the bucket keeps five snapshots per agent: the good one is gone
        await store.put_raw(agent, b"{broken")
    with caplog.at_level(logging.WARNING, logger=REBUILD_LOG):
        rebuilt = await rebuild_reading_snapshots(log, store, caplog)
    assert rebuilt.snapshot is None
    assert rebuilt.state == expected_state(OPS)
    assert len(skipped(caplog)) == 5


async def test_deleted_snapshots(bus: Bus) -> None:
    agent, history, log, store = await fixed_history(bus)
    await store.save(snapshot_at(agent, history, OPS, 7))
    await store.delete(agent)
    await store.delete(agent)  # idempotent
    assert await store.candidates(agent) == []
    assert (await rebuild(counter, log, store)).snapshot is None


def test_snapshot_encoding_round_trip() -> None:
    snap = Snapshot("a", "counter", 3, 30, 31, "1.0.0", 1, "t", {"value": 1, "increments": 2})
    assert Snapshot.decode(snap.encode()) == snap
    assert snap.validated_state(CounterState) == CounterState(value=1, increments=2)


async def test_event_the_code_does_not_know_fails_the_rebuild(bus: Bus) -> None:
    nc, js = bus
    log = JetStreamEventLog(nc, js, f"odd-{next(_names)}")
    headers = event_headers(log.agent, 1, "teleported", 1, "r", 0, "1", utc_now())
    await log.append(0, [NewEvent(b"{}", headers)])
    with pytest.raises(ReplayError, match="teleported"):
        await rebuild(counter, log, None)


async def test_definition_of_another_agent_cannot_replay_it(bus: Bus) -> None:
    agent, _, log, _ = await fixed_history(bus)
    with pytest.raises(ReplayError, match=agent):
        await rebuild(echo, log, None)


async def test_rebuild_leaves_no_consumer_behind(bus: Bus) -> None:
    js = bus[1]
    agent, _, log, store = await fixed_history(bus)
    events_before = (await js.stream_info(layout.events_stream(agent))).state.consumer_count
    await rebuild(counter, log, store)
    kv = await js.stream_info(f"KV_{layout.SNAPSHOTS_BUCKET}")
    events = await js.stream_info(layout.events_stream(agent))
    assert (kv.state.consumer_count, events.state.consumer_count) == (0, events_before)
