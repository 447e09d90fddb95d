"""Requests end to end: client -> splitter -> WAL -> worker -> event log -> reply."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from support import Platform, collect_events, eventually, run_cli, running_platform

from o_bus.agents.counter import CounterState, counter
from o_bus.config import RuntimeConfig
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.snapshots import Snapshot
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding
from o_bus.wire.reply import ErrorReply, OkReply

SNAPSHOT_EVERY = 50


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    config = RuntimeConfig(snapshot_every=SNAPSHOT_EVERY)
    async with running_platform(nats_url, config=config) as running:
        yield running


async def log_end(platform: Platform, agent: str = "counter") -> int:
    return (await platform.log(agent).last_position()).seq


async def counter_state(platform: Platform) -> CounterState:
    rebuilt = await rebuild(counter, platform.log("counter"), None)
    assert isinstance(rebuilt.state, CounterState)
    return rebuilt.state


async def request_raw(
    platform: Platform, agent: str, body: bytes, headers: dict[str, str] | None
) -> tuple[dict[str, str], Any]:
    msg = await platform.nc.request(
        layout.request_subject(agent), body, headers=headers, timeout=10
    )
    reply_headers = msg.headers or {}
    encoding = Encoding(reply_headers.get("Content-Type", Encoding.JSON.value))
    decoded = json.loads(msg.data) if encoding is Encoding.JSON else msgpack.unpackb(msg.data)
    return reply_headers, decoded


# -- one request ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
async def test_increment_replies_with_events_and_seq(
    platform: Platform, encoding: Encoding
) -> None:
    first = await platform.send("counter", "increment", {"by": 4}, encoding=encoding)
    second = await platform.send("counter", "increment", {"by": -1}, encoding=encoding)
    default = await platform.send("counter", "increment", encoding=encoding)
    assert OkReply.model_validate(first).duplicate is False
    assert first == {
        "ok": True,
        "agent": "counter",
        "request_id": first["request_id"],
        "seq": 1,
        "events": [{"seq": 1, "type": "incremented", "version": 1, "data": {"by": 4}}],
        "duplicate": False,
    }
    assert (second["seq"], second["events"][0]["data"]) == (2, {"by": -1})
    assert (default["seq"], default["events"][0]["data"]) == (3, {"by": 1})
    assert await counter_state(platform) == CounterState(value=4, increments=3)
    assert await log_end(platform) == 3


async def test_reply_uses_the_request_encoding(platform: Platform) -> None:
    body = msgpack.packb({"by": 2})
    headers = {
        "ce-id": "mp-1",
        "ce-type": "increment",
        "ce-source": "tests",
        "ce-specversion": "1.0",
        "Content-Type": "application/msgpack",
    }
    reply_headers, reply = await request_raw(platform, "counter", body, headers)
    assert reply_headers["Content-Type"] == "application/msgpack"
    assert reply_headers["O-Status"] == "ok"
    assert reply["ok"] is True
    assert reply["events"][0]["data"] == {"by": 2}


async def test_reset_and_echo(platform: Platform) -> None:
    await platform.send("counter", "increment", {"by": 10})
    reset = await platform.send("counter", "reset")
    assert reset["events"] == [{"seq": 2, "type": "reset", "version": 1, "data": {"previous": 10}}]
    said = await platform.send("echo", "say", {"text": "héllo ✓"})
    assert said["events"][0]["data"] == {"text": "héllo ✓"}
    assert said["seq"] == 1  # every agent has its own sequence
    assert await counter_state(platform) == CounterState(value=0, increments=1)


async def test_structured_mode_request(platform: Platform) -> None:
    event = {
        "specversion": "1.0",
        "id": "structured-1",
        "type": "increment",
        "source": "tests/structured",
        "datacontenttype": "application/json",
        "data": {"by": 6},
    }
    headers = {"Content-Type": CLOUDEVENTS_JSON}
    reply_headers, reply = await request_raw(
        platform, "counter", json.dumps(event).encode(), headers
    )
    assert reply_headers["Content-Type"] == "application/json"
    assert reply["ok"] is True
    assert reply["request_id"] == "structured-1"
    assert reply["events"][0]["data"] == {"by": 6}

    packed = {
        **event,
        "id": "structured-2",
        "datacontenttype": "application/msgpack",
        "data_base64": base64.b64encode(msgpack.packb({"by": 7})).decode(),
    }
    del packed["data"]
    _, reply = await request_raw(platform, "counter", json.dumps(packed).encode(), headers)
    assert reply["ok"] is True
    assert reply["seq"] == 2
    assert reply["events"][0]["data"] == {"by": 7}

    stored = await collect_events(platform.log("counter"))
    assert [e.request_id for e in stored] == ["structured-1", "structured-2"]


# -- duplicates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
async def test_resent_request_id_returns_the_original_reply(
    platform: Platform, encoding: Encoding
) -> None:
    original = await platform.send(
        "counter", "increment", {"by": 3}, request_id="once", encoding=encoding
    )
    await platform.send("counter", "increment", {"by": 100})
    end = await log_end(platform)

    again = await platform.send(
        "counter", "increment", {"by": 3}, request_id="once", encoding=encoding
    )
    assert again["duplicate"] is True
    assert {**again, "duplicate": False} == original
    # Even with different data: the id decides, and nothing new is appended.
    other = await platform.send("counter", "increment", {"by": 50}, request_id="once")
    assert other["events"] == original["events"]
    assert await log_end(platform) == end
    assert await counter_state(platform) == CounterState(value=103, increments=2)


async def test_duplicates_in_flight_get_one_outcome(platform: Platform) -> None:
    replies = await asyncio.gather(
        *(platform.send("counter", "increment", {"by": 5}, request_id="burst") for _ in range(10))
    )
    assert all(r["ok"] for r in replies)
    assert [r["duplicate"] for r in replies].count(False) == 1
    assert {r["seq"] for r in replies} == {1}
    assert await log_end(platform) == 1


async def test_duplicate_after_a_worker_restart_is_rebuilt_from_the_log(
    platform: Platform,
) -> None:
    await platform.send("counter", "increment", {"by": 1})
    original = await platform.send("counter", "increment", {"by": 2}, request_id="keep")
    await platform.send("counter", "increment", {"by": 4})
    await platform.restart_host()  # the in-memory reply cache is gone

    again = await platform.send("counter", "increment", {"by": 2}, request_id="keep")
    assert again["duplicate"] is True
    assert again["events"] == original["events"]
    assert again["seq"] == original["seq"]
    assert await log_end(platform) == 3


# -- history and state ----------------------------------------------------------------------------


async def test_thousand_increments_rebuild_at_any_point(nats_url: str) -> None:
    """Acceptance: after 1,000 increments, the state at N is the sum of the first N."""
    rng = random.Random(20240601)
    amounts = [rng.randint(-1000, 1000) for _ in range(1000)]
    config = RuntimeConfig(snapshot_every=100)
    async with running_platform(nats_url, config=config, agents=("counter",)) as platform:
        for i, by in enumerate(amounts, 1):
            reply = await platform.send("counter", "increment", {"by": by})
            assert reply["ok"] is True
            assert reply["seq"] == i

        log = platform.log("counter")
        sample = sorted({1, 2, 99, 100, 101, 500, 999, 1000, *rng.sample(range(1, 1001), 12)})
        for n in sample:
            for store in (None, platform.snapshots):
                rebuilt = await rebuild(counter, log, store, at_seq=n)
                assert rebuilt.state == CounterState(value=sum(amounts[:n]), increments=n), n
                assert rebuilt.position.seq == n

        for n in (1, 437, 1000):
            code, out, err = await run_cli(
                "state", "counter", "--at", str(n), "--json", "--nats", platform.url
            )
            assert code == 0, err
            shown = json.loads(out)
            assert shown["seq"] == n
            assert shown["state"] == {"value": sum(amounts[:n]), "increments": n}
            assert shown["agent"] == shown["definition"] == "counter"

        code, out, err = await run_cli("state", "counter", "--json", "--nats", platform.url)
        assert code == 0, err
        assert json.loads(out)["state"]["value"] == sum(amounts)


async def test_snapshots_are_taken_and_recovery_resumes(platform: Platform) -> None:
    rng = random.Random(7)
    amounts = [rng.randint(1, 9) for _ in range(120)]
    for by in amounts:
        await platform.send("counter", "increment", {"by": by})

    async def newest_snapshot() -> Snapshot | None:
        raw = await platform.snapshots.candidates("counter")
        return Snapshot.decode(raw[0]) if raw else None

    snap = await eventually(newest_snapshot, what="a snapshot of counter")
    assert SNAPSHOT_EVERY <= snap.seq <= 120
    assert snap.definition == "counter"
    # The snapshot's value tells which events it folded only if the amounts differ.
    assert len(set(amounts)) > 1, "all amounts are equal: the value cannot show what was folded"
    assert snap.state == {"value": sum(amounts[: snap.seq]), "increments": snap.seq}
    anchor = await platform.log("counter").event_at_stream_seq(snap.stream_seq)
    assert anchor is not None
    assert anchor.seq == snap.seq

    host = await platform.restart_host()
    worker = host.workers["counter"]
    assert worker.state == CounterState(value=sum(amounts), increments=120)
    assert worker.committed_seq == 120

    reply = await platform.send("counter", "increment", {"by": 1000})
    assert reply["seq"] == 121
    assert await counter_state(platform) == CounterState(value=sum(amounts) + 1000, increments=121)
    stored = await collect_events(platform.log("counter"))
    assert [e.seq for e in stored] == list(range(1, 122))
    assert [json.loads(e.data)["by"] for e in stored] == [*amounts, 1000], "stored out of order"


async def test_snapshot_on_demand_and_status(platform: Platform) -> None:
    for _ in range(3):
        await platform.send("counter", "increment", {"by": 2})
    status = await platform.nc.request(layout.control_subject("counter", "status"), b"", timeout=10)
    assert json.loads(status.data)["seq"] == 3
    assert json.loads(status.data)["lifecycle"] == "running"

    code, out, err = await run_cli("snapshot", "counter", "--json", "--nats", platform.url)
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "agent": "counter", "seq": 3}


async def test_concurrent_requests_get_unique_contiguous_seqs(platform: Platform) -> None:
    await platform.send("counter", "increment", {"by": 1})
    amounts = list(range(1, 201))
    replies = await asyncio.gather(
        *(
            platform.send("counter", "increment", {"by": by}, request_id=uuid.uuid4().hex)
            for by in amounts
        )
    )
    assert all(r["ok"] for r in replies)
    seqs = sorted(r["seq"] for r in replies)
    assert seqs == list(range(2, 202))
    for reply in replies:
        assert [e["seq"] for e in reply["events"]] == [reply["seq"]]
    by_seq = {r["seq"]: r["events"][0]["data"]["by"] for r in replies}

    stored = await collect_events(platform.log("counter"))
    assert [e.seq for e in stored] == list(range(1, 202))
    assert [json.loads(e.data)["by"] for e in stored[1:]] == [by_seq[s] for s in range(2, 202)]
    assert await counter_state(platform) == CounterState(value=1 + sum(amounts), increments=201)


async def test_rejected_command_is_not_in_the_log(platform: Platform) -> None:
    await platform.send("counter", "increment", {"by": 1})
    reply = await platform.send("counter", "increment", {"by": "lots"})
    assert ErrorReply.model_validate(reply).error.code == "invalid_payload"
    after = await platform.send("counter", "increment", {"by": 1})
    assert after["seq"] == 2
    assert await log_end(platform) == 2
