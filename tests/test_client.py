"""`o_bus.Client` and `o_bus.SyncClient` against a real nats-server and platform: typed
replies, queries, feedback, history, state, live subscriptions, and the same-id retry."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import Platform, eventually, running_platform

import o_bus
from o_bus import (
    Client,
    CommandReply,
    HistoryEvent,
    InvalidRequestError,
    RequestTimeoutError,
    StorageError,
    SyncClient,
)
from o_bus.agents.counter import Increment, Incremented
from o_bus.common.connect import ConnectOptions
from o_bus.errors import AgentNotFoundError, ErrorCode
from o_bus.handlers.feedback.service import FeedbackService
from o_bus.server.embedded import find_nats_server
from o_bus.store import layout


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(nats_url, agents=("counter", "echo", "memory")) as running:
        service = FeedbackService(running.nc, running.js)
        await service.start()
        try:
            yield running
        finally:
            await service.stop()


def test_the_client_is_exported_from_o_bus() -> None:
    assert (o_bus.Client, o_bus.SyncClient) == (Client, SyncClient)
    assert {"Client", "SyncClient", "CommandReply", "QueryReply", "AgentState"} <= set(
        o_bus.__all__
    )


async def test_commands_queries_feedback_history_and_state(platform: Platform) -> None:
    async with Client(platform.url) as bus:
        first = await bus.send("counter", Increment(by=2), request_id="c-1")
        assert isinstance(first, CommandReply)
        assert (first.ok, first.seq, first.duplicate) == (True, 1, False)
        assert [(e.type, e.data) for e in first.events] == [("incremented", {"by": 2})]

        again = await bus.send("counter", "increment", {"by": 2}, request_id="c-1")
        assert (again.duplicate, again.seq) == (True, 1), "same id: the stored reply, no append"
        await bus.send("counter", "increment", {"by": 5}, msgpack=True)

        refused = await bus.send("counter", "increment", {"by": "x"})
        assert not refused.ok
        assert refused.error is not None
        assert refused.error.code == "invalid_payload"
        with pytest.raises(InvalidRequestError) as raised:
            refused.raise_for_error()
        assert raised.value.code is ErrorCode.INVALID_PAYLOAD
        assert set(refused.as_wire()) == {"ok", "agent", "request_id", "error"}

        remembered = await bus.send("memory", "remember", {"text": "the key is under the pot"})
        stats = await bus.query("memory", "stats", min_seq=remembered.seq or 0)
        assert (stats.ok, stats.seq) == (True, remembered.seq)
        assert isinstance(stats.result, dict)

        rated = await bus.feedback("counter", "c-1", 0.5, text="fine")
        assert (rated.ok, rated.agent, rated.regression) == (True, "counter", False)

        history = await bus.history("counter")
        assert [(e.seq, e.type, e.data, e.request_id) for e in history] == [
            (1, "incremented", {"by": 2}, "c-1"),
            (2, "incremented", {"by": 5}, history[1].request_id),
        ]
        assert all(isinstance(e, HistoryEvent) and e.code_version == "1.0.0" for e in history)
        assert [e.seq for e in await bus.history("counter", from_seq=2)] == [2]

        now = await bus.state("counter")
        assert (now.seq, now.state["value"]) == (2, 7)
        then = await bus.state("counter", at=1)
        assert (then.seq, then.state["value"]) == (1, 2)
        with pytest.raises(InvalidRequestError, match="past the end"):
            await bus.state("counter", at=3)
        with pytest.raises(AgentNotFoundError):
            await bus.history("nobody")


async def test_subscribe_delivers_new_events_of_the_types_asked_for(platform: Platform) -> None:
    async with Client(platform.url) as bus:
        await bus.send("counter", "increment", {"by": 1})  # before: not delivered
        async with await bus.subscribe("counter", [Incremented]) as events:
            await bus.send("counter", "reset")  # another type: not delivered
            await bus.send("counter", "increment", {"by": 10})
            await bus.send("counter", "increment", {"by": 20})
            seen = [await asyncio.wait_for(anext(events), 30) for _ in range(2)]
        assert [(e.seq, e.type, e.data) for e in seen] == [
            (3, "incremented", {"by": 10}),
            (4, "incremented", {"by": 20}),
        ], "only new events of the types asked for, in order"


async def test_a_timed_out_send_is_retried_with_the_same_id_and_applied_once(
    platform: Platform,
) -> None:
    await platform.stop_host()  # the WAL accepts requests; nobody answers them yet
    async with Client(platform.url, timeout=0.5) as bus:
        with pytest.raises(RequestTimeoutError) as raised:
            await bus.send("counter", "increment", {"by": 3}, request_id="r-1", retries=1)
        assert raised.value.request_id == "r-1"

        retrying = asyncio.create_task(
            bus.send("counter", "increment", {"by": 3}, request_id="r-1", retries=60)
        )
        await platform.start_host()
        reply = await asyncio.wait_for(retrying, 60)
    assert (reply.ok, reply.request_id) == (True, "r-1")
    events = await Client.wrap(platform.nc).history("counter")
    assert [(e.request_id, e.data) for e in events] == [("r-1", {"by": 3})], (
        "four sends of one id, one event"
    )
    wal = await platform.js.stream_info(layout.WAL_STREAM)
    assert wal.state.messages == 1, "the WAL recognised the re-sent id"


async def test_sync_client_blocks_and_iterates(platform: Platform) -> None:
    def use() -> tuple[int | None, list[int], int]:
        with SyncClient(platform.url) as bus:
            reply = bus.send("counter", "increment", {"by": 4}, request_id="s-1")
            history = [e.seq for e in bus.history("counter")]
            value = bus.state("counter").state["value"]
            events = bus.subscribe("counter", ["incremented"])
            bus.send("counter", "increment", {"by": 1})
            first = next(events)
            events.close()
            assert (first.type, first.data) == ("incremented", {"by": 1})
            return reply.seq, history, value

    seq, history, value = await asyncio.to_thread(use)
    assert (seq, history, value) == (1, [1], 4)


async def test_no_server_is_a_clear_error_not_a_hang() -> None:
    with pytest.raises(StorageError, match="cannot connect"):
        async with Client("nats://127.0.0.1:9", timeout=5.0):
            pass


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[str]:
    """A plain nats-server that wants user ``app`` with password ``s3cret``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port)]
    command += ["--user", "app", "--pass", "s3cret"]
    log = (tmp_path / "nats.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        log.close()


async def test_connection_options_carry_credentials(password_server: str) -> None:
    good = ConnectOptions(user="app", password="s3cret")

    async def connected() -> bool:
        try:
            async with Client(password_server, options=good) as bus:
                return bus.nc.is_connected
        except StorageError:
            return False  # the server is still starting

    await eventually(connected, what="a connection with the right password")
    with pytest.raises(StorageError, match="cannot connect"):
        async with Client(password_server, options=ConnectOptions(user="app", password="no")):
            pass
