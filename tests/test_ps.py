"""`o-bus ps`: processes from synthetic heartbeats, the registry and the supervisor's bucket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from o_bus.cli.ps import build, cmd_ps, format_table
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.runtime.metrics import LATENCY_BUCKETS_MS
from o_bus.store import layout
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import AgentSupervision, ProcessInfo

UPTIME = 3725.0  # a bit over an hour


def beat(agent: str, pid: int, role: str, lifecycle: str = "running") -> Heartbeat:
    return Heartbeat(
        agent=agent,
        definition="counter",
        pid=pid,
        holder=f"box:{pid}:abcdefgh",
        role=role,
        lifecycle=lifecycle,
        code_version="2.0.1",
        started_at=time.time() - UPTIME,  # relative to now: tests run long after import
        sent_at=time.time(),
        seq=12,
        wal_seq=12,
        wal_backlog=0,
        rss_bytes=40_000_000,
        requests=3,
        errors=0,
        latency_sum_ms=1.5,
        latency_buckets=[0] * (len(LATENCY_BUCKETS_MS) + 1),
    )


@contextlib.asynccontextmanager
async def beating(nc: Client, make: Iterable[tuple[str, int, str, str]]) -> AsyncIterator[None]:
    """Publish the given processes' heartbeats every 50 ms, as agent processes do."""
    processes = list(make)

    async def loop() -> None:
        while True:
            for agent, pid, role, lifecycle in processes:
                hb = beat(agent, pid, role, lifecycle)
                await nc.publish(layout.heartbeat_subject(agent), hb.model_dump_json().encode())
            await nc.flush()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_ps(url: str, capsys: pytest.CaptureFixture[str], *, as_json: bool) -> str:
    capsys.readouterr()
    code = await cmd_ps(argparse.Namespace(nats=url, json=as_json, sample=0.4))
    assert code == 0
    return capsys.readouterr().out


async def test_ps_json_shows_processes_from_heartbeats(
    nc: Client, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    js = nc.jetstream()
    await js.create_key_value(KeyValueConfig(bucket=layout.AGENTS_BUCKET))
    registry = Registry(js)
    for name in ("alpha", "idle"):
        await registry.register(
            AgentRecord(name=name, definition="counter", created_at="2025-01-01T00:00:00Z")
        )
    kv = await js.create_key_value(KeyValueConfig(bucket=layout.SUPERVISOR_BUCKET))
    supervision = AgentSupervision(
        agent="alpha",
        status="running",
        restarts=2,
        processes=[
            ProcessInfo(pid=501, host="box", standby=False, started_at=time.time() - UPTIME),
            ProcessInfo(pid=502, host="box", standby=True, started_at=time.time() - UPTIME),
            ProcessInfo(
                pid=503, host="box", standby=True, started_at=time.time() - UPTIME
            ),  # silent
        ],
    )
    await kv.put("alpha", supervision.model_dump_json().encode())

    processes = [("alpha", 501, "active", "running"), ("alpha", 502, "standby", "standby")]
    async with beating(nc, processes):
        out = await run_ps(nats_url, capsys, as_json=True)

    agents = {entry["agent"]: entry for entry in json.loads(out)}
    assert set(agents) == {"alpha", "idle"}
    alpha = agents["alpha"]
    assert (alpha["status"], alpha["restarts"], alpha["standby"]) == ("running", 2, True)
    by_pid = {p["pid"]: p for p in alpha["processes"]}
    assert [p["pid"] for p in alpha["processes"]] == [501, 502, 503]  # active first
    active = by_pid[501]
    assert (active["role"], active["code_version"], active["lifecycle"]) == (
        "active",
        "2.0.1",
        "running",
    )
    assert active["heartbeat"] is True
    assert 0 <= active["heartbeat_age_s"] < 5
    assert active["uptime_s"] == pytest.approx(3725, abs=30)
    assert (by_pid[502]["role"], by_pid[502]["lifecycle"]) == ("standby", "standby")
    assert by_pid[503]["heartbeat"] is False
    assert by_pid[503]["heartbeat_age_s"] is None
    idle = agents["idle"]
    assert idle["processes"] == []
    assert idle["registered"] is True
    assert idle["standby"] is False
    assert idle["restarts"] is None


async def test_ps_table_without_any_bucket(
    nc: Client,
    nats_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No registry, no supervisor: the heartbeats alone still make a table."""
    caplog.set_level(logging.WARNING)
    await nc.publish("o.hb.beta", b"not a heartbeat")  # ignored
    async with beating(nc, [("beta", 777, "active", "running")]):
        out = await run_ps(nats_url, capsys, as_json=False)
    lines = out.splitlines()
    assert lines[0].split() == [
        "AGENT",
        "PID",
        "ROLE",
        "VERSION",
        "LIFECYCLE",
        "UPTIME",
        "RESTARTS",
        "STANDBY",
        "HEARTBEAT",
        "HOST",
        "STATUS",
    ]
    assert len(lines) == 2
    cells = lines[1].split()
    assert cells[:8] == ["beta", "777", "active", "2.0.1", "running", "1h02m", "-", "no"]
    assert "registry unavailable" in caplog.text


async def test_ps_with_nothing_running(nats_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_ps(nats_url, capsys, as_json=False) == "no agents\n"
    assert json.loads(await run_ps(nats_url, capsys, as_json=True)) == []


def test_build_and_table_for_a_failed_agent() -> None:
    now = time.time()
    failed = AgentSupervision(
        agent="gamma", status="failed", reason="too many restarts", restarts=6
    )
    agents = build({}, {"gamma": failed}, [], now)
    entry: dict[str, Any] = agents[0]
    assert entry["registered"] is False
    assert entry["processes"] == []
    table = format_table(agents)
    row = table.splitlines()[1]
    assert row.split()[:8] == ["gamma", "-", "-", "-", "-", "-", "6", "no"]
    assert row.endswith("failed (too many restarts)")
