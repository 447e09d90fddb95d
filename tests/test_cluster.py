"""The platform on a real 3-node JetStream cluster (R3), run locally, under load.

`o-bus up --nats URL1,URL2,URL3 --replicas 3` on a :class:`LocalCluster`; clients send
``increment`` with unique ids and re-send a timed-out request with the same id. Meanwhile:
``kill -9`` of one nats-server then its restart; SIGSTOP of the WAL stream's leader for 5 s;
``kill -9`` of one node, deletion of its store dir, and its restart (it catches up from the
others), each once every stream is whole again. Afterwards every acknowledged request is in
the log exactly once and the state is the fold of the log. The longest gap between two
successful replies after each fault is printed (measured, not asserted: the machine is shared).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from load import Load, check_exactly_once, cluster_healthy
from nats.aio.client import Client
from platform_process import UpProcess

from o_bus.server.cluster import LocalCluster
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout

pytestmark = pytest.mark.slow

CLIENTS = 6


@pytest.fixture
def up(tmp_path: Path, cluster: LocalCluster) -> Iterator[UpProcess]:
    platform = UpProcess(tmp_path / "data", "--nats", cluster.url, "--replicas", "3")
    try:
        yield platform
    finally:
        platform.close()


async def _stream_leader(nc: Client, cluster: LocalCluster, stream: str) -> EmbeddedServer:
    info = await nc.jetstream().stream_info(stream)
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return cluster.node(info.cluster.leader)


async def test_a_3_node_cluster_under_load_loses_nothing_and_applies_nothing_twice(
    cluster: LocalCluster, platform_nc: Client
) -> None:
    nc = platform_nc
    load = Load(nc, CLIENTS)
    load.start()
    gaps: dict[str, float] = {}
    try:
        await load.more_served(50, "requests served before any fault")

        # A server that leads neither the WAL nor the agent's stream: only clients reconnect.
        leaders = {
            await _stream_leader(nc, cluster, stream)
            for stream in (layout.WAL_STREAM, layout.events_stream("counter"))
        }
        followers = [server for server in cluster.servers if server not in leaders]
        for victim, role in [
            *((server, "a follower of both streams") for server in followers[:1]),
            (await _stream_leader(nc, cluster, layout.WAL_STREAM), "the WAL leader"),
        ]:
            start = time.monotonic()
            victim.kill()
            await load.more_served(50, f"requests served with {role} killed")
            await asyncio.to_thread(victim.restart)
            await load.more_served(50, f"requests served after {role} restarted")
            gaps[f"kill -9 of {role}"] = load.longest_gap_since(start)
            await cluster_healthy(nc)  # one fault at a time, as an operator would

        leader = await _stream_leader(nc, cluster, layout.WAL_STREAM)
        start = time.monotonic()
        os.kill(leader.pid or 0, signal.SIGSTOP)
        try:
            await asyncio.sleep(5.0)
        finally:
            os.kill(leader.pid or 0, signal.SIGCONT)
        await load.more_served(50, "requests served after the leader's pause")
        gaps["SIGSTOP of the WAL leader for 5 s"] = load.longest_gap_since(start)
        await cluster_healthy(nc)

        wiped = cluster.servers[1]
        start = time.monotonic()
        wiped.kill()
        shutil.rmtree(wiped.store_dir)
        await asyncio.to_thread(wiped.restart)
        await load.more_served(100, "requests served after a node lost its store")
        gaps["store of one node deleted"] = load.longest_gap_since(start)
    finally:
        await load.finish()
    await cluster_healthy(nc)  # the wiped node has caught up before the log is read
    events = await check_exactly_once(nc, load)
    print(f"{len(events)} requests, retries {dict(load.retries)}; longest stall (s): {gaps}")
