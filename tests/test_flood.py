"""A flood of fire-and-forget requests from one client: the bus refuses what it cannot take,
counts every refusal, keeps serving another client, and recovers by itself when it ends.

The flood is a separate process (the benchmark's flooder) against a real splitter and agent
process. Latency is not asserted here: ``o-bus bench flood`` reports it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client
from processes import ProcessGroup, wait_for_service
from support import WAIT_SECONDS, eventually, running_platform

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.config import RuntimeConfig
from o_bus.requests import request_headers
from o_bus.runtime.registration import register_definitions
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus.store.registry import Registry
from o_bus.wire.codec import Encoding
from o_bus_bench.flood.run import intake_figures, run_flood

FLOOD = 60_000


async def test_a_flood_from_one_client_leaves_another_served(
    nats_url: str, nc: Client, group: ProcessGroup, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue.discover())
    group.spawn("splitter")
    group.spawn_cli("agent", "run", "agent", "counter", "--nats", nats_url)
    await wait_for_service(nc, "splitter")
    await until_answered(nc, layout.control_subject("counter", "status"), timeout=WAIT_SECONDS)

    run = await run_flood(
        nc, nats_url, agent="counter", count=FLOOD, invalid_every=0, seconds=1.0, log_dir=tmp_path
    )

    phases = (run.unloaded, run.during, run.after)
    for phase in phases:  # every request of the other client was answered and served
        assert phase.missing == phase.unserved == 0, run.summary()
        assert phase.failed == 0, run.summary()
        assert phase.served > 0, run.summary()
    assert run.during.served >= 5
    assert run.after.overloaded == 0, run.summary()  # recovered, with no restart

    # Nothing silently dropped: each flood request was stored or refused and counted.
    dropped = run.refused_without_reply()
    assert dropped > 0, "the flood should have been more than the bus takes"
    flood_stored = run.intake["accepted"] - sum(phase.new for phase in phases)
    assert flood_stored + dropped == run.flood["sent"] == FLOOD, run.summary()
    # Everything stored was processed, once: the agent's last event is the last one stored.
    assert run.after.last_seq == run.intake["accepted"], run.summary()


async def test_a_flood_is_held_to_its_share_before_it_reaches_the_wal(
    nats_url: str, nc: Client, group: ProcessGroup
) -> None:
    """While the agent processes nothing (it is stopped), a flooding sender gets no more than
    its contended share of the agent into the WAL beside another waiting sender: the rest is
    refused as it is read, and counted. The agent says how far it got as soon as it moves."""
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue.discover())
    group.spawn("splitter")
    agent = group.spawn_cli("agent", "run", "agent", "counter", "--nats", nats_url)
    await wait_for_service(nc, "splitter")
    await until_answered(nc, layout.control_subject("counter", "status"), timeout=WAIT_SECONDS)
    subject = layout.request_subject("counter")

    def headers(source: str, number: int) -> dict[str, str]:
        return request_headers("increment", f"{source}-{number}", Encoding.JSON, source)

    progress = await nc.subscribe(layout.progress_subject("counter"))
    first = await nc.request(subject, b'{"by": 1}', headers=headers("calm", 0), timeout=10)
    assert json.loads(first.data)["ok"], first.data
    said = await progress.next_msg(timeout=WAIT_SECONDS)
    wal_seq = (await js.stream_info(layout.WAL_STREAM)).state.last_seq
    assert said.data == str(wal_seq).encode()
    with pytest.raises(nats.errors.TimeoutError):  # nothing moved: nothing is said
        await progress.next_msg(timeout=0.3)

    async def heard() -> bool:
        return not (await intake_figures(nc))["outstanding"].get("counter")

    await eventually(heard, what="the splitter to hear the agent's progress")
    share = RuntimeConfig().intake_contended_share
    flood = 50 * share
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        await nc.publish(subject, b'{"by": 1}', headers=headers("calm", 1))
        for number in range(flood):
            await nc.publish(subject, b'{"by": 1}', headers=headers("flood", number))
        await nc.flush()

        async def all_read() -> bool:
            figures = await intake_figures(nc)
            return figures["accepted"] == share + 2 and not figures["waiting_for_wal"]

        await eventually(all_read, what="the flood to be read")
        figures = await intake_figures(nc)
        assert figures["refused"] == {"sender/dropped": flood - share}, figures
        assert figures["outstanding"] == {"counter": share + 1}, figures
        wal = await js.stream_info(layout.WAL_STREAM)
        assert wal.state.last_seq == wal_seq + share + 1
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    await eventually(heard, what="the agent to process what it was given")
    await progress.unsubscribe()


async def test_route_watches_start_again_after_connection_trouble(nats_url: str) -> None:
    """A flood can make the NATS client fail to recreate a bucket watch's consumer, which then
    stays silent: the splitter starts its watches again, and sees changes after that."""
    async with running_platform(nats_url, agents=("counter",)) as platform:
        routes = platform.splitter.routes
        before = list(routes.watches)
        routes.refollow_soon(delay=0.0)
        routes.refollow_soon(delay=0.0)  # once, however often it is asked

        async def watching_again() -> bool:
            return bool(routes.watches) and all(t not in before for t in routes.watches)

        await eventually(watching_again, what="new bucket watches")
        assert all(task.done() for task in before)
        await Registry(platform.js).remove("echo")

        async def echo_gone() -> bool:
            return "echo" not in routes.agents

        await eventually(echo_gone, what="the new watch to see a removed agent")
