"""Processes that must not outlive what they serve (candidates): they stop within a bound when
asked, and by themselves when the bus has been gone for a while."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from support import WAIT_SECONDS

from o_bus.common.connect import connect
from o_bus.common.stopping import finish_within, stop_when_unreachable
from o_bus.server.embedded import EmbeddedServer


async def test_work_that_finishes_when_asked_keeps_its_result() -> None:
    stop = asyncio.Event()

    async def polite() -> str:
        await stop.wait()
        return "done"

    work = asyncio.create_task(polite())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await finish_within(work, stop, grace=WAIT_SECONDS) == "done"


async def test_work_that_hangs_after_a_stop_is_cancelled_after_the_grace() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> str:
        try:
            await asyncio.Event().wait()  # waits for a bus that is not coming back
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    work = asyncio.create_task(stuck())
    stop.set()
    assert await finish_within(work, stop, grace=0.1) is None
    assert cancelled.is_set()
    assert work.cancelled()


async def test_work_that_ends_by_itself_needs_no_stop() -> None:
    async def short() -> int:
        return 7

    assert await finish_within(asyncio.create_task(short()), asyncio.Event(), grace=0.1) == 7


async def test_a_process_stops_once_the_bus_has_been_unreachable_long_enough(
    tmp_path: Path,
) -> None:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        async with connect(server.url, "o-bus-test-unreachable") as (nc, _):
            stop = asyncio.Event()
            watch = asyncio.create_task(stop_when_unreachable(nc, stop, 0.3, interval=0.02))
            await asyncio.sleep(0.5)
            assert not stop.is_set()  # connected all along: nothing to do
            server.stop()
            stopped_at = time.monotonic()
            await asyncio.wait_for(stop.wait(), WAIT_SECONDS)
            assert time.monotonic() - stopped_at >= 0.3  # not before the limit
            assert not nc.is_connected
            await asyncio.wait_for(watch, WAIT_SECONDS)  # it ends with the stop
    finally:
        server.stop()
