"""replay_history: the offline fold of recorded records, against the JetStream rebuild of the
same stream on a real server, with snapshots, bounds and bad input; the history file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.config import StorageConfig
from o_bus.errors import ConfigurationError, SnapshotError
from o_bus.replay import LogRecord, ReplayError, replay_history
from o_bus.replay.history_file import RecordedHistory, read_lines, write_lines
from o_bus.replay.rebuild import rebuild
from o_bus.store.event_log import NewEvent, event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.memory_event_log import InMemoryEventLog
from o_bus.store.provision import provision
from o_bus.store.snapshots import Snapshot, SnapshotStore

HISTORIES = Path(__file__).parent / "data" / "histories"
COUNTER = Catalogue.discover().get("counter")


def counter_history() -> RecordedHistory:
    return RecordedHistory.load(sorted(HISTORIES.glob("*/counter"))[0])


def replayable(record: LogRecord) -> NewEvent:
    """A recorded record as an append writes it (the server adds its own Nats- headers)."""
    headers = {k: v for k, v in record.headers.items() if not k.startswith("Nats-")}
    return NewEvent(record.data, headers, record.subject)


async def test_offline_fold_equals_the_jetstream_rebuild(nats_url: str) -> None:
    history = counter_history()
    async with connect(nats_url, "test-offline") as (nc, js):
        await provision(js, StorageConfig(storage="file"))
        log = JetStreamEventLog(nc, js, "counter")
        await log.append(0, [replayable(r) for r in history.events])
        snapshots = SnapshotStore(js)
        for record in history.snapshots:
            await snapshots.put_raw("counter", record.data)
        from_server = await rebuild(COUNTER, log, None)
        from_snapshot = await rebuild(COUNTER, log, snapshots)
        read_back = await log.records_for_wal(from_server.position.wal_seq)
    offline = replay_history(COUNTER, history.events)
    assert offline.state == from_server.state == from_snapshot.state
    assert offline.position == from_server.position
    assert offline.replayed == from_server.replayed == history.expected["seq"]
    newest = history.snapshots[-1].data
    tail = replay_history(COUNTER, history.events, snapshot=newest)
    assert from_snapshot.snapshot is not None
    assert tail.snapshot is not None
    assert tail.snapshot.seq == from_snapshot.snapshot.seq
    assert (tail.replayed, tail.position) == (from_snapshot.replayed, from_snapshot.position)
    assert [r.headers["ce-sequence"] for r in read_back] == [str(offline.position.seq)]


async def test_records_of_an_in_memory_log_fold_too() -> None:
    log = InMemoryEventLog("counter")
    now = utc_now()
    batch = [
        NewEvent(
            b'{"by":%d}' % by, event_headers("counter", n, "incremented", 1, f"r{n}", n, "1", now)
        )
        for n, by in enumerate((5, 7, -2), 1)
    ]
    await log.append(0, batch)
    folded = replay_history(COUNTER, log.stream.records)
    assert folded.state.model_dump() == {"value": 10, "increments": 3}
    assert (folded.position.seq, folded.position.wal_seq) == (3, 3)


def test_at_seq_stops_the_fold() -> None:
    history = counter_history()
    assert replay_history(COUNTER, history.events, at_seq=3).state.model_dump() == {
        "value": 6,
        "increments": 3,
    }


def test_outcome_and_other_records_are_passed_over() -> None:
    history = counter_history()
    noise = [
        LogRecord(1000 + r.seq, "o.outcome.counter", {"ce-walseq": "1"}) for r in history.events
    ]
    mixed = sorted([*history.events, *noise], key=lambda r: r.seq)
    assert replay_history(COUNTER, mixed).state == replay_history(COUNTER, history.events).state


def test_a_snapshot_of_another_agent_is_refused() -> None:
    history = counter_history()
    doc = json.loads(history.snapshots[-1].data)
    other = Snapshot(**{**{k: doc[k] for k in Snapshot.__slots__}, "agent": "someone"}).encode()
    with pytest.raises(SnapshotError, match="belongs to 'someone'"):
        replay_history(COUNTER, history.events, snapshot=other)


def test_a_snapshot_outside_the_history_is_refused() -> None:
    history = counter_history()
    newest = Snapshot.decode(history.snapshots[-1].data)
    cut = [r for r in history.events if r.seq < newest.stream_seq]
    with pytest.raises(SnapshotError, match=f"seq {newest.seq} at stream seq"):
        replay_history(COUNTER, cut, snapshot=history.snapshots[-1].data)


def test_a_corrupt_snapshot_is_refused() -> None:
    raw = counter_history().snapshots[-1].data.replace(b'"value":', b'"value":1')
    with pytest.raises(SnapshotError, match="checksum"):
        replay_history(COUNTER, counter_history().events, snapshot=raw)


def test_an_event_the_code_does_not_know_names_its_sequence() -> None:
    history = counter_history()
    third = history.events[2]
    odd = LogRecord(
        third.seq, third.subject, {**third.headers, "ce-type": "teleported"}, third.data
    )
    events = [odd if r.seq == third.seq else r for r in history.events]
    with pytest.raises(ReplayError, match=r"cannot apply 'teleported' v1 at seq 3 of 'counter'"):
        replay_history(COUNTER, events)


def test_history_lines_round_trip_text_and_binary(tmp_path: Path) -> None:
    records = [
        LogRecord(
            1,
            "o.evt.a",
            {"ce-type": "x", "Content-Type": "application/json"},
            b'{"a":"\xc3\xa9"}',
            "t",
        ),
        LogRecord(2, "o.wal.a", {"Content-Type": "application/msgpack"}, b"\x81\xa1a\xff", ""),
        LogRecord(3, "o.fence.a", {}, b""),
    ]
    path = tmp_path / "records.jsonl"
    write_lines(path, records)
    assert read_lines(path) == records
    lines = path.read_text().splitlines()
    assert '"data":"{\\"a\\":\\"é\\"}"' in lines[0]  # text stays readable in a diff
    assert "data_b64" in lines[1]


def test_a_malformed_history_line_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"seq": 1, "subject": "o.evt.a", "headers": {}, "data": ""}\n{"seq": "x"}\n')
    with pytest.raises(ConfigurationError, match=r"events.jsonl:2: not a recorded record"):
        read_lines(path)
    with pytest.raises(ConfigurationError, match="cannot read the recorded state"):
        RecordedHistory.load(tmp_path)
