"""Clients under load for the platform tests: unique ids, re-sent on timeouts and retryable
errors as a real client does, and the checks every fault test ends with."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js.errors import Error as JetStreamError
from processes import check_log
from pydantic_core import from_json
from support import eventually

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.errors import AgentUnavailableError
from o_bus.replay.rebuild import rebuild
from o_bus.runtime.wal_watchdog import last_wal_seq
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus_bench.replies import all_replies

__all__ = ["AGENT", "Load", "check_exactly_once", "cluster_healthy"]

AGENT = "counter"
TRANSIENT_CODES = {"unavailable", "internal_error", "concurrency_conflict", "overloaded"}


class Load:
    """Clients sending increments; what was acknowledged, and when replies came."""

    def __init__(self, nc: Client, clients: int = 6) -> None:
        self.nc = nc
        self.acked: dict[str, int] = {}
        self.replied_at: list[float] = []
        self.stop = asyncio.Event()
        self.retries: Counter[str] = Counter()
        self.tasks: list[asyncio.Task[None]] = []
        self.clients = clients

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.client(n)) for n in range(self.clients)]

    async def finish(self, timeout: float = 120.0) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout)

    async def client(self, number: int) -> None:
        count = 0
        while not self.stop.is_set():
            count += 1
            request_id, by = f"c{number}-{count}", (number * 7 + count) % 11 + 1
            reply = await self.until_ok(request_id, by)
            assert [event["data"] for event in reply["events"]] == [{"by": by}], reply
            self.acked[request_id] = by
            self.replied_at.append(time.monotonic())

    async def until_ok(self, request_id: str, by: int) -> dict[str, Any]:
        """Re-send with the same id after a timeout or a retryable error, as a client does."""
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline, f"{request_id} never succeeded"
            try:
                reply = await client.send(
                    self.nc, AGENT, "increment", {"by": by}, request_id=request_id, timeout=1.0
                )
            except AgentUnavailableError:
                self.retries["timeout"] += 1
                continue
            if reply["ok"]:
                return reply
            code = reply["error"]["code"]
            assert code in TRANSIENT_CODES, reply
            self.retries[code] += 1
            await asyncio.sleep(0.05)

    def longest_gap_since(self, start: float) -> float:
        times = [start, *(t for t in self.replied_at if t >= start)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def more_served(self, count: int, what: str) -> None:
        target = len(self.acked) + count

        async def served() -> bool:
            return len(self.acked) >= target

        try:
            await eventually(served, what=what, timeout=90)
        except AssertionError as err:
            raise AssertionError(f"{err}; {await where_it_stands(self.nc)}") from None


async def where_it_stands(nc: Client) -> str:
    """What the agent and every splitter say now, and the WAL's end for the agent as its
    stream's leader knows it: the facts a stall is diagnosed from."""
    facts: dict[str, Any] = {}
    try:
        facts["wal_last"] = await last_wal_seq(nc.jetstream(), AGENT)
    except nats.errors.Error as err:
        facts["wal_last"] = repr(err)
    try:
        status = await nc.request(layout.control_subject(AGENT, "status"), b"", timeout=2.0)
        facts["agent"] = from_json(status.data)
    except nats.errors.Error as err:
        facts["agent"] = repr(err)
    try:
        subject = layout.service_status_subject("splitter")
        replies = await all_replies(nc, subject, 2, timeout=2.0)
        facts["splitters"] = [reply.get("intake") for reply in replies]
    except TimeoutError as err:
        facts["splitters"] = str(err)
    return f"now: {facts}"


async def check_exactly_once(nc: Client, load: Load) -> list[StoredEvent]:
    """Every acknowledged request is in the log exactly once, nothing else is, and the state
    rebuilt from the log is the fold of what was acknowledged."""
    js = nc.jetstream()
    events = await check_log(nc, js, AGENT)  # contiguous, nothing applied twice
    in_log = {event.request_id or "" for event in events}
    assert set(load.acked) <= in_log, sorted(set(load.acked) - in_log)[:10]
    assert len(events) == len(load.acked), sorted(in_log - set(load.acked))[:10]
    log = JetStreamEventLog(nc, js, AGENT)
    state = (await rebuild(Catalogue.discover().get(AGENT), log, None)).state
    assert state.model_dump() == {"value": sum(load.acked.values()), "increments": len(events)}
    return events


async def cluster_healthy(nc: Client, timeout: float = 90.0) -> None:
    """Until every stream has a leader and every replica is current."""

    async def healthy() -> bool:
        try:
            streams = await nc.jetstream(timeout=2.0).streams_info()
        except (nats.errors.Error, JetStreamError):
            return False
        for info in streams:
            cluster = info.cluster
            if cluster is None or not cluster.leader:
                return False
            if any(not replica.current for replica in cluster.replicas or []):
                return False
        return True

    await eventually(healthy, what="every stream whole again on the cluster", timeout=timeout)
