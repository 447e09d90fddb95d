"""The WAL watchdog: a consumer that stops delivering while requests wait is started again;
an idle, busy, paused or unreachable agent is left alone; starting the consumer again under
load loses nothing and applies nothing twice."""

from __future__ import annotations

import asyncio

import nats.errors
from support import eventually, running_platform

from o_bus.runtime.wal_watchdog import WalWatchdog, last_wal_seq


class _Agent:
    """What the watchdog sees of an agent: how far it got, and the WAL's end."""

    def __init__(self, processed: int, stored: int) -> None:
        self.processed, self.stored = processed, stored
        self.consuming = True
        self.store_down = False
        self.restarted = 0

    async def read_stored(self) -> int:
        if self.store_down:
            raise nats.errors.TimeoutError
        return self.stored

    async def restart(self) -> None:
        self.restarted += 1

    def watchdog(self) -> WalWatchdog:
        return WalWatchdog(
            "counter",
            lambda: self.processed,
            lambda: self.consuming,
            self.read_stored,
            self.restart,
        )


async def test_a_consumer_that_delivers_nothing_while_a_request_waits_is_started_again() -> None:
    agent = _Agent(processed=5, stored=9)
    watchdog = agent.watchdog()
    assert not await watchdog.check()  # request 9 is seen waiting
    assert await watchdog.check()  # still not taken one check later: stuck
    assert agent.restarted == 1
    assert watchdog.restarts == 1
    agent.processed = 9  # the new consumer delivered it
    assert not await watchdog.check()
    assert not await watchdog.check()
    assert agent.restarted == 1


async def test_an_idle_agent_is_left_alone() -> None:
    agent = _Agent(processed=7, stored=7)
    watchdog = agent.watchdog()
    for _ in range(5):
        assert not await watchdog.check()
    assert agent.restarted == 0


async def test_a_request_taken_before_the_next_check_is_no_stall() -> None:
    agent = _Agent(processed=7, stored=8)  # stored a moment before the check
    watchdog = agent.watchdog()
    assert not await watchdog.check()
    agent.processed = 8
    assert not await watchdog.check()
    assert not await watchdog.check()
    assert agent.restarted == 0


async def test_an_agent_making_progress_is_left_alone() -> None:
    agent = _Agent(processed=1, stored=1000)  # a long backlog, taken steadily
    watchdog = agent.watchdog()
    for _ in range(5):
        agent.processed += 10
        assert not await watchdog.check()
    assert agent.restarted == 0


async def test_a_paused_agent_is_left_alone() -> None:
    agent = _Agent(processed=3, stored=10)
    agent.consuming = False
    watchdog = agent.watchdog()
    for _ in range(3):
        assert not await watchdog.check()
    assert agent.restarted == 0


async def test_an_unreachable_store_is_no_stall() -> None:
    agent = _Agent(processed=3, stored=10)
    agent.store_down = True
    watchdog = agent.watchdog()
    for _ in range(3):
        assert not await watchdog.check()
    assert agent.restarted == 0
    agent.store_down = False  # back: the stall is seen from now on
    assert not await watchdog.check()
    assert await watchdog.check()


async def test_consuming_again_under_load_loses_nothing_and_applies_nothing_twice(
    nats_url: str,
) -> None:
    async with running_platform(nats_url) as platform:
        assert await last_wal_seq(platform.js, "nobody") == 0
        host = platform.host
        assert host is not None
        worker = host.workers["counter"]
        served = worker.metrics.requests

        async def increments(first: int) -> list[dict[str, object]]:
            return [
                await platform.send("counter", "increment", {"by": 1}, request_id=f"r{i}")
                for i in range(first, first + 100)
            ]

        async def restarts() -> None:
            for k in range(1, 6):  # spread over the load: after every 60 requests or so

                async def progressed(k: int = k) -> bool:
                    return worker.metrics.requests >= served + 60 * k

                await eventually(progressed, what=f"{60 * k} requests served")
                await worker.consume_again()

        replies = await asyncio.gather(
            *(increments(first) for first in range(0, 400, 100)), restarts()
        )
        sent = [reply for batch in replies[:-1] for reply in batch or ()]
        assert len(sent) == 400
        assert all(reply["ok"] for reply in sent), [r for r in sent if not r["ok"]][:3]
        assert worker.committed_state.model_dump() == {"value": 400, "increments": 400}
        assert await last_wal_seq(platform.js, "counter") == worker.processed_wal
        assert worker.watchdog.restarts == 0  # a healthy consumer is never restarted
