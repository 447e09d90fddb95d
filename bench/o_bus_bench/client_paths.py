"""`o-bus bench client --nats URL`: one command's round trip through each way a Python
program can send it, beside a bare NATS request/reply on the same server (the floor).

Sequential requests to agent `counter` of a running platform (`o-bus up`): the low-level
``o_bus.requests.send``, the typed ``o_bus.Client.send``, and FastStream's broker through
``o_bus.integrations.faststream.OBus`` (needs ``o-bus[faststream]``). Wall time per request
and this process's CPU per request; the agent's own work is the same in each.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as Nats

from o_bus import Client, requests
from o_bus.agents.counter import Increment
from o_bus_bench.arguments import at_least_one

__all__ = ["main"]

FLOOR_SUBJECT = "o_bench.client.floor"


async def _timed(label: str, count: int, send: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(min(50, count)):  # warm-up
        await send()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await send()
    wall_us = (time.perf_counter() - wall) / count * 1e6
    cpu_us = (time.process_time() - cpu) / count * 1e6
    print(f"{label:<30} {wall_us:8.0f} µs/request   {cpu_us:6.0f} µs client CPU/request")


async def _run(url: str, count: int) -> None:
    responder, raw = Nats(), Nats()
    await responder.connect(url)
    await raw.connect(url)

    async def echo(msg: Any) -> None:
        await msg.respond(b"{}")

    await responder.subscribe(FLOOR_SUBJECT, cb=echo)
    await responder.flush()  # subscribed on the server before the first request
    try:
        await _timed("raw NATS request (floor)", count, lambda: raw.request(FLOOR_SUBJECT, b"{}"))
        await _timed(
            "o_bus.requests.send",
            count,
            lambda: requests.send(raw, "counter", "increment", {"by": 1}),
        )
        async with Client(url) as bus:
            await _timed("o_bus.Client.send", count, lambda: bus.send("counter", Increment(by=1)))
        try:
            from faststream.nats import NatsBroker

            from o_bus.integrations.faststream import OBus
        except ImportError:
            print("FastStream OBus.send: not installed (pip install 'o-bus[faststream]')")
            return
        broker = NatsBroker(url, logger=None)
        async with broker:
            await broker.start()
            obus = OBus(broker)
            await _timed(
                "FastStream OBus.send", count, lambda: obus.send("counter", Increment(by=1))
            )
    finally:
        await raw.close()
        await responder.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="o-bus bench client", description=__doc__)
    parser.add_argument("--nats", required=True, help="URL of a running platform (o-bus up)")
    parser.add_argument("--requests", type=at_least_one, default=1000, help="per way")
    args = parser.parse_args(argv)
    asyncio.run(_run(args.nats, args.requests))
    return 0
