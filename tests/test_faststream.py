"""The FastStream integration and its example against a real nats-server and platform:
orders become counter commands (awaited, or published as a handler's return value) and the
counter's new events reach a typed handler; other event types do not."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
from faststream.nats import NatsBroker
from support import Platform, eventually, running_platform

from o_bus.agents.counter import Increment, Incremented
from o_bus.client import Client

EXAMPLE = Path(__file__).parents[1] / "examples" / "faststream" / "app.py"


def load_example(url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("O_BUS_NATS_URL", url)
    spec = importlib.util.spec_from_file_location("faststream_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "faststream_example", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def platform(nats_url: str) -> AsyncIterator[Platform]:
    async with running_platform(nats_url, agents=("counter", "memory")) as running:
        yield running


async def test_the_example_app_sends_commands_and_sees_typed_events(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example(platform.url, monkeypatch)
    assert isinstance(example.broker, NatsBroker)
    await platform.send("counter", "increment", {"by": 100})  # before the app: not seen
    async with example.broker:
        await example.broker.start()
        await example.broker.publish({"sku": "tea", "quantity": 3}, "orders.placed")
        await example.broker.publish({"sku": "cups", "quantity": 4}, "orders.bulk")
        await platform.send("counter", "reset")  # another event type: not delivered

        async def both_seen() -> bool:
            return len(example.seen) >= 2

        await eventually(both_seen, what="the app to see both increments")
        reply = await example.bus.send("counter", Increment(by=5), request_id="fs-1")
        again = await example.bus.send("counter", Increment(by=5), request_id="fs-1")
        stats = await example.bus.query("memory", "stats")

        async def all_seen() -> bool:
            return len(example.seen) >= 3

        await eventually(all_seen, what="the app to see the typed send")
    assert (reply.ok, again.duplicate, again.seq) == (True, True, reply.seq)
    assert stats.ok
    assert isinstance(stats.result, dict)
    assert all(isinstance(event, Incremented) for _, event in example.seen)
    assert sorted(event.by for _, event in example.seen) == [3, 4, 5]
    assert all(seq > 1 for seq, _ in example.seen), "events from before the app are not sent"
    async with Client(platform.url) as bus:
        history = await bus.history("counter")
    assert [e.type for e in history].count("reset") == 1
    assert sorted(e.data["by"] for e in history if e.type == "incremented") == [3, 4, 5, 100]


async def test_a_send_to_a_silent_agent_times_out_with_its_request_id(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from o_bus.errors import RequestTimeoutError

    example = load_example(platform.url, monkeypatch)
    await platform.stop_host()
    async with example.broker:
        await example.broker.start()
        example.bus.retries = 1
        with pytest.raises(RequestTimeoutError) as raised:
            await example.bus.send("counter", Increment(by=1), request_id="fs-2", timeout=0.3)
    assert raised.value.request_id == "fs-2"
    await platform.start_host()
    async with Client(platform.url) as bus:
        reply = await asyncio.wait_for(
            bus.send("counter", "increment", {"by": 1}, request_id="fs-2"), 30
        )
    assert reply.duplicate or reply.ok
    async with Client(platform.url) as bus:
        history = await bus.history("counter")
    assert [e.request_id for e in history].count("fs-2") == 1, "two sends, applied once"
