"""Agents placed on hosts: `o-bus run host --name H` runs the agents placed on H, `o-bus place`
moves an agent at run time, `o-bus ps` shows the host of each process, a host whose
supervisor dies is taken over by that host's standby supervisor while the agent keeps serving,
and an agent with its standby on another host keeps serving when the host running its active
is killed (the host and every process on it, as when a machine dies)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from load import Load, check_exactly_once
from nats.aio.client import Client
from platform_process import UpProcess, pids_with_env
from processes import check_log, send_until_ok, supervision_record, wait_for_service
from support import eventually, run_cli

from o_bus.store.lease import LeaseStore

pytestmark = pytest.mark.slow

MARKER = "O_BUS_TEST_HOST_GROUP"


class Hosts:
    """`o-bus run host` processes of one test; closed by PID (their agents included)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.marker = uuid.uuid4().hex
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, url: str, name: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}
        env[MARKER] = self.marker
        log = (self.log_dir / f"host-{name}-{len(self.procs)}.log").open("wb")
        command = [sys.executable, "-m", "o_bus.cli.main", "run", "host", "--name", name]
        proc = subprocess.Popen(
            [*command, "--nats", url], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for _ in range(100):
            left = pids_with_env(MARKER, self.marker)
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        raise AssertionError(f"host processes survived: {pids_with_env(MARKER, self.marker)}")


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    found = Hosts(tmp_path)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def up_args() -> tuple[str, ...]:
    return ("--splitters", "1")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_an_agent_placed_on_a_host_moves_there_and_survives_its_supervisor(
    up: UpProcess, platform_nc: Client, hosts: Hosts
) -> None:
    nc, js = platform_nc, platform_nc.jetstream()
    first = hosts.spawn(up.url, "h1")
    second = hosts.spawn(up.url, "h1")  # stands by for the same host
    await wait_for_service(nc, "host")
    await send_until_ok(nc, "counter", "increment", {"by": 1}, "before")

    code, out, err = await run_cli("place", "counter", "h1", "--nats", up.url)
    assert code == 0, err
    assert json.loads(out) == {"agent": "counter", "host": "h1"}

    async def on_h1() -> list[int] | None:
        record = await supervision_record(js, "counter")
        if record is None or not record.processes:
            return None
        if any(info.host != "h1" for info in record.processes):
            return None
        return [info.pid for info in record.processes]

    [pid] = await eventually(on_h1, what="counter to run on host h1")
    leader = _parent(pid)
    assert leader in (first.pid, second.pid)
    await send_until_ok(nc, "counter", "increment", {"by": 2}, "on-h1")
    code, out, err = await run_cli("ps", "--json", "--nats", up.url)
    assert code == 0, err
    [counter] = [a for a in json.loads(out) if a["agent"] == "counter"]
    assert [p["host"] for p in counter["processes"] if p["pid"] == pid] == ["h1"]

    os.kill(leader, signal.SIGKILL)  # the other h1 supervisor takes over and adopts it
    await send_until_ok(nc, "counter", "increment", {"by": 3}, "after-host-death")

    code, _, err = await run_cli("place", "counter", "default", "--nats", up.url)
    assert code == 0, err

    async def back_home() -> bool:
        record = await supervision_record(js, "counter")
        return record is not None and any(
            info.host != "h1" and info.pid != pid for info in record.processes
        )

    await eventually(back_home, what="counter back on the default supervisors")
    await send_until_ok(nc, "counter", "increment", {"by": 4}, "home-again")
    events = await check_log(nc, js, "counter")
    assert [e.request_id for e in events] == ["before", "on-h1", "after-host-death", "home-again"]


async def test_an_agent_keeps_serving_when_the_host_running_its_active_is_killed(
    up: UpProcess, platform_nc: Client, hosts: Hosts
) -> None:
    nc = platform_nc
    h1, _ = hosts.spawn(up.url, "h1"), hosts.spawn(up.url, "h2")
    code, _, err = await run_cli("place", "counter", "h1", "--standby-on", "h1", "--nats", up.url)
    assert code != 0
    assert "never runs on the same host as the active" in err, err
    code, out, err = await run_cli(
        "place", "counter", "h1", "--standby-on", "h2", "--json", "--nats", up.url
    )
    assert code == 0, err
    assert json.loads(out) == {"agent": "counter", "host": "h1", "standby_on": ["h2"]}

    async def spread() -> dict[str, dict[str, Any]] | None:
        code, out, _ = await run_cli("ps", "--json", "--nats", up.url)
        [counter] = [a for a in json.loads(out) if a["agent"] == "counter"] if code == 0 else [{}]
        live = [p for p in counter.get("processes", []) if p["heartbeat"]]
        by_role = {p["role"]: p for p in live}
        if len(live) != 2 or set(by_role) != {"active", "standby"}:
            return None
        return by_role if by_role["active"]["host"] != by_role["standby"]["host"] else None

    placed = await eventually(spread, what="counter active on one host, standby on the other")
    assert (placed["active"]["host"], placed["standby"]["host"]) == ("h1", "h2")

    load = Load(nc, clients=4)
    load.start()
    try:
        await load.more_served(20, "requests served on h1")
        killed_at = time.monotonic()
        for pid in (h1.pid, placed["active"]["pid"]):  # the host and what runs on it
            os.kill(pid, signal.SIGKILL)
        await load.more_served(20, "requests served after h1 was killed")
        print(
            f"longest gap between replies after the host kill: "
            f"{load.longest_gap_since(killed_at):.2f}s"
        )
    finally:
        await load.finish()

    async def on_h2() -> bool:
        lease = await LeaseStore(nc.jetstream()).current("counter")
        return lease is not None and lease.holder.pid == placed["standby"]["pid"]

    await eventually(on_h2, what="the standby on h2 to hold counter's lease")
    await check_exactly_once(nc, load)
