"""Platform chaos: for at least two minutes, at random (seeded), the parts of a running platform
are killed or paused under load, and afterwards nothing acknowledged is lost or applied twice.

`o-bus up --nats URL1,URL2,URL3 --replicas 3 --standby` on a local 3-node cluster. Faults, one
every 0.5 to 2.5 s: ``kill -9`` of a service process of `up` (splitter, supervisor, arbiter,
health; each at most once per 20 s, within its restart intensity), ``kill -9`` or SIGSTOP of a
``counter`` agent process, and, one node at a time, ``kill -9`` of a nats-server (restarted 1 to
3 s later), SIGSTOP of a node for 1 to 5 s, or the loss of a node's store (killed, store
deleted, restarted); the next node fault waits until every stream is whole again. It prints
every fault it caused and what it checked.

``O_BUS_CHAOS_SEED`` replays the same choices (timing still varies);
``O_BUS_PLATFORM_CHAOS_SECONDS`` sets the duration (default 120).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from load import AGENT, Load, check_exactly_once, cluster_healthy
from nats.aio.client import Client
from platform_process import UpProcess, command_line

from o_bus.server.cluster import LocalCluster
from o_bus.store.registry import Registry
from o_bus.supervision.records import SupervisionPolicy

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("O_BUS_CHAOS_SEED", random.randrange(2**32)))
SECONDS = float(os.environ.get("O_BUS_PLATFORM_CHAOS_SECONDS", "120"))
SERVICES = ("splitter", "supervisor", "arbiter", "health")
SERVICE_KILL_SPACING = 20.0  # seconds between two kills of the same service kind
# The agent is killed far more often than the default intensity allows: never escalate.
POLICY = SupervisionPolicy(
    standby=True, max_restarts=100_000, period=10.0, backoff_initial=0.05, backoff_max=1.0
)


@pytest.fixture
def up(tmp_path: Path, cluster: LocalCluster) -> Iterator[UpProcess]:
    platform = UpProcess(tmp_path / "data", "--nats", cluster.url, "--replicas", "3", "--standby")
    try:
        yield platform
    finally:
        platform.close()


class Monkey:
    """Chooses and causes the faults; remembers what it did."""

    def __init__(
        self, up: UpProcess, cluster: LocalCluster, rng: random.Random, nc: Client
    ) -> None:
        self.up, self.cluster, self.rng, self.nc = up, cluster, rng, nc
        self.done: list[str] = []
        self.service_killed: dict[str, float] = {}
        self.node_busy = False
        self.background: set[asyncio.Task[None]] = set()
        self.start = time.monotonic()

    def note(self, text: str) -> None:
        self.done.append(f"{time.monotonic() - self.start:6.1f}s {text}")

    def later(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def act(self) -> None:
        kind = self.rng.choice(["service", "agent", "agent", "node"])
        if kind == "service":
            self.kill_service()
        elif kind == "agent":
            self.hit_agent()
        elif not self.node_busy:
            self.node_busy = True
            self.later(self.hit_node())

    def kill_service(self) -> None:
        now = time.monotonic()
        ready = [
            s for s in SERVICES if now - self.service_killed.get(s, -1e9) > SERVICE_KILL_SPACING
        ]
        if not ready:
            return
        service = self.rng.choice(ready)
        pids = self.up.children(service)
        if not pids:
            return
        pid = self.rng.choice(pids)
        os.kill(pid, signal.SIGKILL)
        self.service_killed[service] = now
        self.note(f"kill -9 {service} {pid}")

    def hit_agent(self) -> None:
        pids = [p for p in self.up.children("agent") if AGENT in command_line(p)]
        if not pids:
            return
        pid = self.rng.choice(pids)
        if self.rng.random() < 0.6:
            os.kill(pid, signal.SIGKILL)
            self.note(f"kill -9 agent {AGENT} {pid}")
            return
        pause = self.rng.uniform(0.2, 2.0)
        os.kill(pid, signal.SIGSTOP)
        self.note(f"SIGSTOP agent {AGENT} {pid} for {pause:.1f}s")
        self.later(self._resume(pid, pause))

    async def _resume(self, pid: int, pause: float) -> None:
        await asyncio.sleep(pause)
        if AGENT in command_line(pid):
            os.kill(pid, signal.SIGCONT)

    async def hit_node(self) -> None:
        try:
            node = self.rng.choice(self.cluster.servers)
            what = self.rng.choices(["kill", "pause", "wipe"], weights=[5, 4, 1])[0]
            if what == "pause" and node.pid is not None:
                pause = self.rng.uniform(1.0, 5.0)
                self.note(f"SIGSTOP nats-server {node.server_name} for {pause:.1f}s")
                os.kill(node.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(pause)
                finally:
                    os.kill(node.pid, signal.SIGCONT)
                return
            down = self.rng.uniform(1.0, 3.0)
            node.kill()
            if what == "wipe":
                shutil.rmtree(node.store_dir, ignore_errors=True)
            self.note(
                f"kill -9 nats-server {node.server_name}"
                + (" and delete its store" if what == "wipe" else "")
                + f"; restart in {down:.1f}s"
            )
            await asyncio.sleep(down)
            await asyncio.to_thread(node.restart)
            # One node at a time: the next node fault waits until every stream is whole again
            # (as an operator waits for a healthy cluster before taking down another node).
            await cluster_healthy(self.nc)
        finally:
            self.node_busy = False

    async def settle(self) -> None:
        while self.background:
            await asyncio.gather(*self.background)


async def test_platform_chaos_loses_nothing_and_applies_nothing_twice(
    up: UpProcess, cluster: LocalCluster, platform_nc: Client
) -> None:
    nc = platform_nc
    where = f"(seed {SEED}; logs in {up.log_path.parent})"
    registry = Registry(nc.jetstream())
    record = await registry.get(AGENT)
    await registry.register(record.model_copy(update={"supervision": POLICY}))
    load = Load(nc, clients=6)
    load.start()
    monkey = Monkey(up, cluster, random.Random(SEED), nc)
    try:
        await load.more_served(20, f"requests served before the chaos {where}")
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            await asyncio.sleep(monkey.rng.uniform(0.5, 2.5))
            assert up.proc is not None
            assert up.proc.poll() is None, f"o-bus up exited {where}:\n{up.output()[-3000:]}"
            await monkey.act()
        await monkey.settle()
        await cluster_healthy(nc)
        await load.more_served(50, f"requests served after the chaos {where}")
    finally:
        print(f"platform chaos {where}: {len(monkey.done)} faults in {SECONDS:g}s:")
        print("\n".join(monkey.done))
        await monkey.settle()
        await load.finish(timeout=180)
    events = await check_exactly_once(nc, load)
    print(
        f"checked: {len(events)} events = {len(load.acked)} acknowledged requests, each once, "
        f"contiguous; state = fold(log); retries {dict(load.retries)}"
    )
    assert len(monkey.done) >= SECONDS / 5, monkey.done
