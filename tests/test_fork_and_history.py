"""Forking an agent at a point in its history, and looking at history from the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from support import (
    Platform,
    cli_json_lines,
    collect_events,
    read_subject,
    run_cli,
    running_platform,
)

from o_bus.agents.counter import CounterState, counter
from o_bus.errors import AgentNotFoundError, ErrorCode, InvalidRequestError
from o_bus.replay.fork import fork
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.store.event_log import NewEvent, event_headers, utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.registry import AgentRecord, Registry

AMOUNTS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(nats_url) as running:
        for by in AMOUNTS:
            assert (await running.send("counter", "increment", {"by": by}))["ok"] is True
        yield running


async def state_of(platform: Platform, agent: str, at: int | None = None) -> CounterState:
    rebuilt = await rebuild(counter, platform.log(agent), platform.snapshots, at_seq=at)
    assert isinstance(rebuilt.state, CounterState)
    return rebuilt.state


# -- fork -----------------------------------------------------------------------------------------


async def test_fork_copies_history_up_to_k(platform: Platform) -> None:
    k = 6
    copied = await fork(platform.nc, platform.js, "counter", k, "counter-k6")
    assert copied == k

    forked = await collect_events(platform.log("counter-k6"))
    original = await collect_events(platform.log("counter"))
    assert [e.seq for e in forked] == list(range(1, k + 1))
    assert [(e.type, e.version, e.data, e.time, e.request_id) for e in forked] == [
        (e.type, e.version, e.data, e.time, e.request_id) for e in original[:k]
    ]
    assert all(e.agent == "counter-k6" for e in forked)
    raw = await read_subject(
        platform.js, layout.events_stream("counter-k6"), layout.event_subject("counter-k6")
    )
    assert [(m.headers or {})["ce-forkedfrom"] for m in raw] == [
        f"counter:{seq}" for seq in range(1, k + 1)
    ]

    assert await state_of(platform, "counter-k6") == await state_of(platform, "counter", at=k)
    assert await state_of(platform, "counter-k6") == CounterState(
        value=sum(AMOUNTS[:k]), increments=k
    )

    # The original is untouched.
    assert [e.seq for e in original] == list(range(1, len(AMOUNTS) + 1))
    assert await state_of(platform, "counter") == CounterState(
        value=sum(AMOUNTS), increments=len(AMOUNTS)
    )

    record = await Registry(platform.js).get("counter-k6")
    assert record.definition == "counter"
    assert record.forked_from == {"agent": "counter", "seq": k}
    assert record.commands == sorted(counter.command_types)


async def test_fork_is_served_by_the_running_host(platform: Platform) -> None:
    k = 4
    await fork(platform.nc, platform.js, "counter", k, "branch")
    await platform.wait_for_workers("branch")
    await platform.wait_for_route("branch")

    reply = await platform.send("branch", "increment", {"by": 1000})
    assert reply["ok"] is True
    assert reply["agent"] == "branch"
    assert reply["seq"] == k + 1
    assert await state_of(platform, "branch") == CounterState(
        value=sum(AMOUNTS[:k]) + 1000, increments=k + 1
    )

    # The two histories now diverge; the original carries on from its own end.
    original = await platform.send("counter", "increment", {"by": 1})
    assert original["seq"] == len(AMOUNTS) + 1
    assert (await state_of(platform, "counter")).value == sum(AMOUNTS) + 1


async def test_fork_into_an_existing_name_fails(platform: Platform) -> None:
    await fork(platform.nc, platform.js, "counter", 2, "taken")
    echo_before = await platform.log("echo").last_position()
    for existing in ("taken", "echo", "counter"):
        with pytest.raises(InvalidRequestError) as info:
            await fork(platform.nc, platform.js, "counter", 5, existing)
        assert info.value.code is ErrorCode.MALFORMED_REQUEST
        assert "exists" in info.value.message
    assert [e.seq for e in await collect_events(platform.log("taken"))] == [1, 2]
    assert await platform.log("echo").last_position() == echo_before
    assert (await Registry(platform.js).get("taken")).forked_from == {"agent": "counter", "seq": 2}


async def test_fork_into_a_name_with_events_but_no_record_fails(platform: Platform) -> None:
    stray = JetStreamEventLog(platform.nc, platform.js, "stray")
    headers = event_headers("stray", 1, "incremented", 1, "r", 0, "1", utc_now())
    await stray.append(0, [NewEvent(b'{"by": 1}', headers)])
    with pytest.raises(InvalidRequestError, match="already has events"):
        await fork(platform.nc, platform.js, "counter", 3, "stray")
    assert [e.seq for e in await collect_events(stray)] == [1]


@pytest.mark.parametrize("at", [-1, len(AMOUNTS) + 1])
async def test_fork_outside_the_log_fails(platform: Platform, at: int) -> None:
    with pytest.raises(InvalidRequestError, match="outside"):
        await fork(platform.nc, platform.js, "counter", at, f"out{at + 1}")
    with pytest.raises(AgentNotFoundError):
        await Registry(platform.js).get(f"out{at + 1}")


async def test_fork_bad_names(platform: Platform) -> None:
    with pytest.raises(InvalidRequestError, match="invalid agent name"):
        await fork(platform.nc, platform.js, "counter", 1, "has.dots")
    with pytest.raises(InvalidRequestError):
        await fork(platform.nc, platform.js, "counter", 1, "-leading-dash")
    with pytest.raises(AgentNotFoundError):
        await fork(platform.nc, platform.js, "no-such-agent", 1, "copy")


async def test_fork_at_zero_is_an_empty_agent(platform: Platform) -> None:
    assert await fork(platform.nc, platform.js, "counter", 0, "blank") == 0
    assert (
        await platform.log("blank").last_position()
        == await platform.log("never-written").last_position()
    )
    await platform.wait_for_workers("blank")
    await platform.wait_for_route("blank")
    reply = await platform.send("blank", "increment", {"by": 2})
    assert reply["seq"] == 1


async def test_fork_longer_than_one_atomic_batch(platform: Platform) -> None:
    """More than 1,000 events are copied in several atomic batches, contiguously."""
    total, k = 1_250, 1_100
    bulk = JetStreamEventLog(platform.nc, platform.js, "bulk")
    last, now = 0, utc_now()
    for start in range(1, total + 1, 500):
        batch = [
            NewEvent(
                json.dumps({"by": seq}).encode(),
                event_headers("bulk", seq, "incremented", 1, f"r{seq}", 0, "1.0.0", now),
            )
            for seq in range(start, min(start + 500, total + 1))
        ]
        last = await bulk.append(last, batch)
    await Registry(platform.js).register(
        AgentRecord(name="bulk", definition="counter", commands=["increment"], created_at=now)
    )

    assert await fork(platform.nc, platform.js, "bulk", k, "bulk-copy") == k
    copied = await collect_events(platform.log("bulk-copy"))
    assert [e.seq for e in copied] == list(range(1, k + 1))
    expected = CounterState(value=sum(range(1, k + 1)), increments=k)
    assert await state_of(platform, "bulk-copy") == expected
    assert await state_of(platform, "bulk", at=k) == expected


async def test_fork_from_the_cli(platform: Platform) -> None:
    code, out, err = await run_cli(
        "fork", "counter", "--at", "3", "--into", "cli-copy", "--json", "--nats", platform.url
    )
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "agent": "cli-copy", "forked_from": "counter", "seq": 3}
    assert await state_of(platform, "cli-copy") == CounterState(value=8, increments=3)

    code, _, err = await run_cli(
        "fork", "counter", "--at", "3", "--into", "cli-copy", "--json", "--nats", platform.url
    )
    assert code == 2
    assert "already exists" in err
    assert ErrorCode.MALFORMED_REQUEST.value in err


# -- history --------------------------------------------------------------------------------------


async def test_history_from_to(platform: Platform) -> None:
    code, out, err = await run_cli(
        "history", "counter", "--json", "--from", "3", "--to", "7", "--nats", platform.url
    )
    assert code == 0, err
    lines = cli_json_lines(out)
    assert [line["seq"] for line in lines] == [3, 4, 5, 6, 7]
    assert [line["data"] for line in lines] == [{"by": by} for by in AMOUNTS[2:7]]
    assert {line["type"] for line in lines} == {"incremented"}
    stored = await collect_events(platform.log("counter"))
    assert [line["time"] for line in lines] == [e.time for e in stored[2:7]]
    assert [line["request_id"] for line in lines] == [e.request_id for e in stored[2:7]]


HISTORY_BOUNDS: list[tuple[tuple[str, ...], list[int]]] = [
    ((), list(range(1, 11))),
    (("--from", "9"), [9, 10]),
    (("--to", "2"), [1, 2]),
    (("--from", "5", "--to", "5"), [5]),
    (("--from", "7", "--to", "3"), []),
    (("--from", "11"), []),
    (("--to", "50"), list(range(1, 11))),
]


async def test_history_bounds(platform: Platform) -> None:
    for bounds, expected in HISTORY_BOUNDS:
        code, out, err = await run_cli(
            "history", "counter", "--json", *bounds, "--nats", platform.url
        )
        assert code == 0, err
        assert [line["seq"] for line in cli_json_lines(out)] == expected, bounds


async def test_history_of_an_unknown_agent(platform: Platform) -> None:
    code, out, err = await run_cli("history", "nobody", "--json", "--nats", platform.url)
    assert code == 2
    assert out == ""
    assert "nobody" in err


# -- state at a time ------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_state_at_time(nats_url: str) -> None:
    async with running_platform(nats_url, agents=("counter",)) as platform:
        for by in (10, 20, 30):
            # One at a time, so each event has its own time (microseconds) and "between" exists.
            await platform.send("counter", "increment", {"by": by})
        events = await collect_events(platform.log("counter"))
        t1, t2, t3 = (parse_time(e.time) for e in events)
        assert t1 < t2 < t3

        between = t1 + (t2 - t1) / 2
        points = {
            (t1 - timedelta(seconds=1)).isoformat(): (0, 0),
            between.isoformat(): (10, 1),
            between.astimezone().isoformat(): (10, 1),  # same instant, local offset
            events[1].time: (30, 2),  # an event's own time includes it
            (t3 + timedelta(hours=1)).isoformat(): (60, 3),
        }
        for when, (value, seq) in points.items():
            code, out, err = await run_cli(
                "state", "counter", "--at-time", when, "--json", "--nats", platform.url
            )
            assert code == 0, err
            shown = json.loads(out)
            assert shown["state"]["value"] == value, when
            assert shown["seq"] == seq, when
            assert shown["from_snapshot"] is None

        naive_utc = between.replace(tzinfo=None).isoformat()  # naive means UTC
        code, out, err = await run_cli(
            "state", "counter", "--at-time", naive_utc, "--json", "--nats", platform.url
        )
        assert code == 0, err
        assert json.loads(out)["state"]["value"] == 10

        code, _, err = await run_cli(
            "state", "counter", "--at-time", "yesterday", "--json", "--nats", platform.url
        )
        assert code == 2
        assert "ISO-8601" in err
