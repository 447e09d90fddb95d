"""Requests end to end: client -> splitter -> WAL -> agent process -> event log -> reply.

On the platform `o-bus up` runs (one per module: splitters, supervisors, an agent process per
agent); each test registers fresh agents on it, so tests stay independent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from typing import Any

import msgpack
import pytest
from platform_process import PlatformClient
from support import collect_events, eventually, run_cli

from o_bus.agents.counter import CounterState, counter
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.snapshots import Snapshot
from o_bus.wire.codec import CLOUDEVENTS_JSON, Encoding
from o_bus.wire.reply import ErrorReply, OkReply

SNAPSHOT_EVERY = 50


@pytest.fixture(scope="module")
def up_args() -> tuple[str, ...]:
    return ("--snapshot-every", str(SNAPSHOT_EVERY))


@pytest.fixture
def platform(up_platform: PlatformClient) -> PlatformClient:
    return up_platform


async def log_end(platform: PlatformClient, agent: str) -> int:
    return (await platform.log(agent).last_position()).seq


async def counter_state(platform: PlatformClient, agent: str) -> CounterState:
    rebuilt = await rebuild(counter, platform.log(agent), None)
    assert isinstance(rebuilt.state, CounterState)
    return rebuilt.state


async def request_raw(
    platform: PlatformClient, agent: str, body: bytes, headers: dict[str, str] | None
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
    platform: PlatformClient, encoding: Encoding
) -> None:
    agent = await platform.fresh("counter")
    first = await platform.send(agent, "increment", {"by": 4}, encoding=encoding)
    second = await platform.send(agent, "increment", {"by": -1}, encoding=encoding)
    default = await platform.send(agent, "increment", encoding=encoding)
    assert OkReply.model_validate(first).duplicate is False
    assert first == {
        "ok": True,
        "agent": agent,
        "request_id": first["request_id"],
        "seq": 1,
        "events": [{"seq": 1, "type": "incremented", "version": 1, "data": {"by": 4}}],
        "duplicate": False,
    }
    assert (second["seq"], second["events"][0]["data"]) == (2, {"by": -1})
    assert (default["seq"], default["events"][0]["data"]) == (3, {"by": 1})
    assert await counter_state(platform, agent) == CounterState(value=4, increments=3)
    assert await log_end(platform, agent) == 3


async def test_reply_uses_the_request_encoding(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    body = msgpack.packb({"by": 2})
    headers = {
        "ce-id": "mp-1",
        "ce-type": "increment",
        "ce-source": "tests",
        "ce-specversion": "1.0",
        "Content-Type": "application/msgpack",
    }
    reply_headers, reply = await request_raw(platform, agent, body, headers)
    assert reply_headers["Content-Type"] == "application/msgpack"
    assert reply_headers["O-Status"] == "ok"
    assert reply["ok"] is True
    assert reply["events"][0]["data"] == {"by": 2}


async def test_reset_and_echo(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    await platform.send(agent, "increment", {"by": 10})
    reset = await platform.send(agent, "reset")
    assert reset["events"] == [{"seq": 2, "type": "reset", "version": 1, "data": {"previous": 10}}]
    echo = await platform.fresh("echo")
    said = await platform.send(echo, "say", {"text": "héllo ✓"})
    assert said["events"][0]["data"] == {"text": "héllo ✓"}
    assert said["seq"] == 1  # every agent has its own sequence
    assert await counter_state(platform, agent) == CounterState(value=0, increments=1)


async def test_structured_mode_request(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    event = {
        "specversion": "1.0",
        "id": "structured-1",
        "type": "increment",
        "source": "tests/structured",
        "datacontenttype": "application/json",
        "data": {"by": 6},
    }
    headers = {"Content-Type": CLOUDEVENTS_JSON}
    reply_headers, reply = await request_raw(platform, agent, json.dumps(event).encode(), headers)
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
    _, reply = await request_raw(platform, agent, json.dumps(packed).encode(), headers)
    assert reply["ok"] is True
    assert reply["seq"] == 2
    assert reply["events"][0]["data"] == {"by": 7}

    stored = await collect_events(platform.log(agent))
    assert [e.request_id for e in stored] == ["structured-1", "structured-2"]


# -- duplicates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(Encoding))
async def test_resent_request_id_returns_the_original_reply(
    platform: PlatformClient, encoding: Encoding
) -> None:
    agent = await platform.fresh("counter")
    original = await platform.send(
        agent, "increment", {"by": 3}, request_id="once", encoding=encoding
    )
    await platform.send(agent, "increment", {"by": 100})
    end = await log_end(platform, agent)

    again = await platform.send(agent, "increment", {"by": 3}, request_id="once", encoding=encoding)
    assert again["duplicate"] is True
    assert {**again, "duplicate": False} == original
    # Even with different data: the id decides, and nothing new is appended.
    other = await platform.send(agent, "increment", {"by": 50}, request_id="once")
    assert other["events"] == original["events"]
    assert await log_end(platform, agent) == end
    assert await counter_state(platform, agent) == CounterState(value=103, increments=2)


async def test_duplicates_in_flight_get_one_outcome(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    replies = await asyncio.gather(
        *(platform.send(agent, "increment", {"by": 5}, request_id="burst") for _ in range(10))
    )
    assert all(r["ok"] for r in replies)
    assert [r["duplicate"] for r in replies].count(False) == 1
    assert {r["seq"] for r in replies} == {1}
    assert await log_end(platform, agent) == 1


async def test_duplicate_after_a_worker_restart_is_rebuilt_from_the_log(
    platform: PlatformClient,
) -> None:
    agent = await platform.fresh("counter")
    await platform.send(agent, "increment", {"by": 1})
    original = await platform.send(agent, "increment", {"by": 2}, request_id="keep")
    await platform.send(agent, "increment", {"by": 4})
    await platform.restart(agent)  # a new process: the in-memory reply cache is gone

    again = await platform.send(agent, "increment", {"by": 2}, request_id="keep")
    assert again["duplicate"] is True
    assert again["events"] == original["events"]
    assert again["seq"] == original["seq"]
    assert await log_end(platform, agent) == 3


# -- history and state ----------------------------------------------------------------------------


async def test_thousand_increments_rebuild_at_any_point(platform: PlatformClient) -> None:
    """Acceptance: after 1,000 increments, the state at N is the sum of the first N."""
    agent = await platform.fresh("counter")
    rng = random.Random(20240601)
    sent = [rng.randint(-1000, 1000) for _ in range(1000)]
    by_seq: dict[int, int] = {}
    for window in range(0, len(sent), 50):  # 50 in flight: the order is the one replies give
        replies = await asyncio.gather(
            *(platform.send(agent, "increment", {"by": by}) for by in sent[window : window + 50])
        )
        assert all(reply["ok"] for reply in replies), replies
        by_seq.update((reply["seq"], reply["events"][0]["data"]["by"]) for reply in replies)
    assert sorted(by_seq) == list(range(1, 1001))
    amounts = [by_seq[seq] for seq in range(1, 1001)]

    log = platform.log(agent)
    edges = (SNAPSHOT_EVERY - 1, SNAPSHOT_EVERY, SNAPSHOT_EVERY + 1)
    sample = sorted({1, 2, *edges, 500, 999, 1000, *rng.sample(range(1, 1001), 12)})
    for n in sample:
        for store in (None, platform.snapshots):
            rebuilt = await rebuild(counter, log, store, at_seq=n)
            assert rebuilt.state == CounterState(value=sum(amounts[:n]), increments=n), n
            assert rebuilt.position.seq == n

    for n in (1, 437, 1000):
        code, out, err = await run_cli(
            "state", agent, "--at", str(n), "--json", "--nats", platform.url
        )
        assert code == 0, err
        shown = json.loads(out)
        assert shown["seq"] == n
        assert shown["state"] == {"value": sum(amounts[:n]), "increments": n}
        assert shown["agent"] == agent
        assert shown["definition"] == "counter"

    code, out, err = await run_cli("state", agent, "--json", "--nats", platform.url)
    assert code == 0, err
    assert json.loads(out)["state"]["value"] == sum(amounts)


async def test_snapshots_are_taken_and_recovery_resumes(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    rng = random.Random(7)
    amounts = [rng.randint(1, 9) for _ in range(120)]
    for by in amounts:
        await platform.send(agent, "increment", {"by": by})

    async def newest_snapshot() -> Snapshot | None:
        raw = await platform.snapshots.candidates(agent)
        return Snapshot.decode(raw[0]) if raw else None

    snap = await eventually(newest_snapshot, what="a snapshot of counter")
    assert SNAPSHOT_EVERY <= snap.seq <= 120
    assert snap.definition == "counter"
    # The snapshot's value tells which events it folded only if the amounts differ.
    assert len(set(amounts)) > 1, "all amounts are equal: the value cannot show what was folded"
    assert snap.state == {"value": sum(amounts[: snap.seq]), "increments": snap.seq}
    anchor = await platform.log(agent).event_at_stream_seq(snap.stream_seq)
    assert anchor is not None
    assert anchor.seq == snap.seq

    status = await platform.restart(agent)  # a new process recovers from snapshot and log
    assert status["seq"] == 120
    assert status["snapshot_seq"] >= snap.seq

    reply = await platform.send(agent, "increment", {"by": 1000})
    assert reply["seq"] == 121
    assert await counter_state(platform, agent) == CounterState(
        value=sum(amounts) + 1000, increments=121
    )
    stored = await collect_events(platform.log(agent))
    assert [e.seq for e in stored] == list(range(1, 122))
    assert [json.loads(e.data)["by"] for e in stored] == [*amounts, 1000], "stored out of order"


async def test_snapshot_on_demand_and_status(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    for _ in range(3):
        await platform.send(agent, "increment", {"by": 2})
    status = await platform.nc.request(layout.control_subject(agent, "status"), b"", timeout=10)
    assert json.loads(status.data)["seq"] == 3
    assert json.loads(status.data)["lifecycle"] == "running"

    code, out, err = await run_cli("snapshot", agent, "--json", "--nats", platform.url)
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "agent": agent, "seq": 3}


async def test_concurrent_requests_get_unique_contiguous_seqs(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    await platform.send(agent, "increment", {"by": 1})
    amounts = list(range(1, 201))
    replies = await asyncio.gather(
        *(
            platform.send(agent, "increment", {"by": by}, request_id=uuid.uuid4().hex)
            for by in amounts
        )
    )
    assert all(r["ok"] for r in replies)
    seqs = sorted(r["seq"] for r in replies)
    assert seqs == list(range(2, 202))
    for reply in replies:
        assert [e["seq"] for e in reply["events"]] == [reply["seq"]]
    by_seq = {r["seq"]: r["events"][0]["data"]["by"] for r in replies}

    stored = await collect_events(platform.log(agent))
    assert [e.seq for e in stored] == list(range(1, 202))
    assert [json.loads(e.data)["by"] for e in stored[1:]] == [by_seq[s] for s in range(2, 202)]
    assert await counter_state(platform, agent) == CounterState(
        value=1 + sum(amounts), increments=201
    )


async def test_rejected_command_is_not_in_the_log(platform: PlatformClient) -> None:
    agent = await platform.fresh("counter")
    await platform.send(agent, "increment", {"by": 1})
    reply = await platform.send(agent, "increment", {"by": "lots"})
    assert ErrorReply.model_validate(reply).error.code == "invalid_payload"
    after = await platform.send(agent, "increment", {"by": 1})
    assert after["seq"] == 2
    assert await log_end(platform, agent) == 2
