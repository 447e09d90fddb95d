"""`o-bus bench cluster-kill`: recovery time after a kill -9 of one nats-server of a local
3-node JetStream cluster (every stream R3), under steady load.

The splitter and the supervisor (with the counter agent's process) run as under `o-bus up`;
an open-loop load sends ``increment`` at ``--rate`` requests/s, re-sending a timed-out request
with the same id as a client does. Each round kills one server by role (a follower of both the
WAL and the agent's event stream, the WAL's leader, the event stream's leader), measures the
time from the kill to the first successful reply to a request sent after it ("recovery"),
restarts the server and waits until every stream is whole again. A request that never
succeeds is reported; none should be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.common.event_loop import install_uvloop
from o_bus.config import StorageConfig
from o_bus.runtime.registration import register_definitions
from o_bus.server.cluster import LocalCluster
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus_bench.arguments import at_least_one, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.recovery.options import Options, policy
from o_bus_bench.recovery.services import start_services, stop_services, until_answered
from o_bus_bench.recovery.steady_load import SteadyLoad
from o_bus_bench.stack import AGENT

__all__ = ["build_parser", "main"]

ROLES = ("follower", "wal-leader", "events-leader")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench cluster-kill",
        description="kill -9 one nats-server of a local 3-node cluster under load: time to "
        "the next successful reply, per role of the killed server.",
    )
    parser.add_argument("--rounds", type=at_least_one, default=3, help="kills per role")
    parser.add_argument("--rate", type=positive, default=20.0, help="requests/s")
    parser.add_argument(
        "--timeout", type=positive, default=0.5, help="seconds before a client re-sends"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep data and logs here")
    return parser


async def _leader(nc: Client, cluster: LocalCluster, stream: str) -> EmbeddedServer:
    info = await nc.jetstream(timeout=2.0).stream_info(stream)
    if info.cluster is None or info.cluster.leader is None:
        raise BenchError(f"stream {stream} has no leader")
    return cluster.node(info.cluster.leader)


async def _victim(nc: Client, cluster: LocalCluster, role: str) -> EmbeddedServer:
    wal = await _leader(nc, cluster, layout.WAL_STREAM)
    events = await _leader(nc, cluster, layout.events_stream(AGENT))
    if role == "wal-leader":
        return wal
    if role == "events-leader":
        return events
    followers = [s for s in cluster.servers if s not in (wal, events)]
    return followers[0] if followers else cluster.servers[0]


async def _whole(nc: Client, timeout: float = 90.0) -> None:
    """Until every stream has a leader and every replica is current."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            streams = await nc.jetstream(timeout=2.0).streams_info()
            if all(
                s.cluster is not None
                and s.cluster.leader
                and all(r.current for r in s.cluster.replicas or [])
                for s in streams
            ):
                return
        except Exception:  # the cluster is still electing: ask again
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("the cluster did not become whole again")


async def _until_recovered(load: SteadyLoad, killed_at: float) -> float | None:
    """Poll the load's records (they are plain data) until a request sent after the kill
    succeeded, or 60 s passed."""
    for _ in range(1200):  # 60 s
        if (found := _recovery(load, killed_at)) is not None:
            return found
        await asyncio.sleep(0.05)
    return None


def _recovery(load: SteadyLoad, killed_at: float) -> float | None:
    """Seconds from the kill to the first success of a request first sent after it."""
    done = [r.ok_at for r in load.records if r.first_sent >= killed_at and r.ok_at is not None]
    return min(done) - killed_at if done else None


async def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cluster = LocalCluster(work / "cluster", 3)
    await asyncio.to_thread(cluster.start)
    services: list[Any] = []
    load: SteadyLoad | None = None
    try:
        async with connect(cluster.url, "o-bus-bench-cluster") as (nc, js):
            await provision(js, StorageConfig(replicas=3))  # stored: the agent stream is R3
            catalogue = Catalogue([Catalogue.discover().get(AGENT)])
            await register_definitions(js, catalogue, policy(False, Options()))
        services = start_services(cluster.url, work)
        async with connect(cluster.url, "o-bus-bench-cluster-load") as (nc, _):
            for name in ("splitter", "supervisor"):
                await until_answered(nc, layout.service_status_subject(name))
            load = SteadyLoad(nc, args.rate, args.timeout, give_up=30.0, max_in_flight=200)
            load.start()
            await asyncio.sleep(2.0)  # warm: the agent is active, replies flow
            rounds: dict[str, list[float | None]] = {role: [] for role in ROLES}
            for _ in range(args.rounds):
                for role in ROLES:
                    victim = await _victim(nc, cluster, role)
                    killed_at = time.monotonic()
                    victim.kill()
                    rounds[role].append(await _until_recovered(load, killed_at))
                    shown = rounds[role][-1]
                    print(
                        f"kill -9 of the {role} ({victim.server_name}): {shown}",
                        file=sys.stderr,
                        flush=True,
                    )
                    await asyncio.to_thread(victim.restart)
                    await _whole(nc)
                    await asyncio.sleep(1.0)
            await load.stop()
            failed = sum(1 for r in load.records if r.ok_at is None)
            return {
                "rate": args.rate,
                "client_timeout_s": args.timeout,
                "requests": len(load.records),
                "never_succeeded": failed,
                "recovery_s": {
                    role: {
                        "each": [None if v is None else round(v, 3) for v in values],
                        "median": _median(values),
                        "max": max((v for v in values if v is not None), default=None),
                    }
                    for role, values in rounds.items()
                },
            }
    finally:
        if load is not None:
            load.cancel()
        stop_services(services)
        cluster.stop()


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    install_uvloop()
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(_run(args, args.work_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-cluster-") as folder:
            result = asyncio.run(_run(args, Path(folder)))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"rate {result['rate']}/s, client re-send after {result['client_timeout_s']} s; "
            f"{result['requests']} requests, {result['never_succeeded']} never succeeded"
        )
        for role, figures in result["recovery_s"].items():
            print(
                f"kill -9 of the {role}: recovery median {figures['median']} s, "
                f"max {figures['max']} s, each {figures['each']}"
            )
    return 0
