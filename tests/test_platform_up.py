"""`o-bus up` as one platform per data dir, whose own processes are supervised.

Real processes throughout: `o-bus up` on a private data dir and port, its nats-server, its
services and the agent processes. Checked: a second `up` on the same data dir is refused and
names the running one; SIGHUP stops everything; a `kill -9` of `up` leaves no process behind;
a `kill -9` of each service kind (splitter, nats-server, supervisor, arbiter, health) under load
is repaired while clients keep getting answers, and afterwards every acknowledged request is in
the log exactly once and the state is the fold of the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nats.aio.client import Client
from platform_process import UpProcess, command_line, platform_pids
from processes import check_log, send_until_ok
from support import eventually

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.errors import AgentUnavailableError
from o_bus.replay.rebuild import rebuild
from o_bus.store.jetstream_event_log import JetStreamEventLog

pytestmark = pytest.mark.slow

AGENT = "counter"
UP_COMMAND = (sys.executable, "-m", "o_bus.cli.main", "up")
CLIENTS = 6


@pytest.fixture(scope="module")
def up_args() -> tuple[str, ...]:
    return ("--splitters", "2")


def _gone(pids: set[int], timeout: float = 30.0) -> set[int]:
    """The pids of ``pids`` still alive after waiting up to ``timeout`` for them to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if command_line(pid)}
        if not alive:
            return set()
        time.sleep(0.1)
    return {pid for pid in pids if command_line(pid)}


def test_a_second_up_on_the_same_data_dir_is_refused_naming_the_first(up: UpProcess) -> None:
    up.start()
    url = up.wait_up()
    env = {k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}
    second = subprocess.run(
        [
            *UP_COMMAND,
            "--data-dir",
            str(up.data_dir),
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--console-port",
            "0",
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    message = second.stderr.decode()
    assert second.returncode == 2, message
    assert f"pid {up.pid}" in message, message
    assert url in message, message
    assert up.proc is not None
    assert up.proc.poll() is None  # the first one is untouched


def test_sighup_stops_every_process_of_the_platform(up: UpProcess) -> None:
    up.start()
    up.wait_up()
    started = platform_pids(up.pid)
    assert len(started) >= 9, started  # nats-server, 7 services, agents
    os.kill(up.pid, signal.SIGHUP)
    assert up.proc is not None
    assert up.proc.wait(timeout=60) == 0, up.output()[-3000:]
    assert "O is down." in up.output()
    assert not _gone(started), "processes outlived `o-bus up`"


async def test_kill_9_of_up_takes_every_process_with_it_and_frees_the_data_dir(
    up: UpProcess, platform_nc: Client
) -> None:
    await send_until_ok(platform_nc, AGENT, "increment", {"by": 5}, "before")
    started = platform_pids(up.pid)
    assert any(command_line(pid)[3:5] == ["run", "agent"] for pid in started)
    os.kill(up.pid, signal.SIGKILL)
    assert up.proc is not None
    up.proc.wait()
    left = await asyncio.to_thread(_gone, started)
    assert not left, [command_line(pid) for pid in left]

    again = UpProcess(up.data_dir)  # the lock died with its holder
    try:
        again.start()
        url = await asyncio.to_thread(again.wait_up)
        nc = Client()
        await nc.connect(url, connect_timeout=5)
        reply = await send_until_ok(nc, AGENT, "increment", {"by": 1}, "after")
        assert reply["seq"] == 2  # the same store: "before" is still there
        await nc.close()
    finally:
        again.close()


def _service_pid(up: UpProcess, service: str) -> int:
    if service == "nats-server":
        pid = up.server_pid()
        assert pid is not None
        return pid
    if service == "supervisor":  # the leader: the one whose children are the agents
        agents_parents = {
            int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
            for pid in up.children("agent")
        }
        leaders = [pid for pid in up.children("supervisor") if pid in agents_parents]
        return leaders[0] if leaders else up.children("supervisor")[0]
    return up.children(service)[0]


async def test_kill_9_of_each_service_kind_under_load_loses_nothing(
    up: UpProcess, platform_nc: Client
) -> None:
    nc = platform_nc
    acked: dict[str, int] = {}
    stop = asyncio.Event()

    async def load(number: int) -> None:
        count = 0
        while not stop.is_set():
            count += 1
            request_id, by = f"c{number}-{count}", (number + count) % 7 + 1
            reply = await send_until_ok(
                nc, AGENT, "increment", {"by": by}, request_id, attempt_timeout=1.0, timeout=60
            )
            assert [event["data"] for event in reply["events"]] == [{"by": by}], reply
            acked[request_id] = by

    clients = [asyncio.create_task(load(n)) for n in range(CLIENTS)]
    try:
        await _kill_each_service(up, acked)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 90)
    assert up.proc is not None
    assert up.proc.poll() is None, up.output()[-3000:]

    async def all_restarts_reported() -> bool:
        return up.output().count("restarted") >= 5

    await eventually(all_restarts_reported, what="up to report the 5 restarts")

    js = nc.jetstream()
    events = await check_log(nc, js, AGENT)  # contiguous, nothing applied twice
    in_log = {event.request_id for event in events}
    assert set(acked) <= in_log, sorted(set(acked) - in_log)[:10]
    log = JetStreamEventLog(nc, js, AGENT)
    state = (await rebuild(Catalogue.discover().get(AGENT), log, None)).state
    assert state.model_dump() == {"value": sum(acked.values()), "increments": len(events)}
    assert len(events) == len(acked)


async def _kill_each_service(up: UpProcess, acked: dict[str, int]) -> None:
    """kill -9 one process of each service kind in turn; wait for its replacement and for
    requests to be served again."""
    for service in ("splitter", "nats-server", "supervisor", "arbiter", "health"):
        victim = _service_pid(up, service)
        running = len(up.children(service))
        served = len(acked)
        os.kill(victim, signal.SIGKILL)

        async def repaired(
            service: str = service,
            victim: int = victim,
            served: int = served,
            running: int = running,
        ) -> bool:
            if service == "nats-server":
                replaced = up.server_pid() not in (None, victim)
            else:
                now = up.children(service)
                replaced = victim not in now and len(now) >= running
            return replaced and len(acked) > served + CLIENTS

        await eventually(repaired, what=f"{service} restarted and requests served", timeout=60)


async def test_a_resent_request_is_applied_once_whichever_splitter_takes_it(
    up: UpProcess, platform_nc: Client
) -> None:
    nc = platform_nc
    first_seq: dict[str, int] = {}
    for number in range(40):
        if number == 20:  # the other splitter (and its restarted successor) take the rest
            os.kill(up.children("splitter")[0], signal.SIGKILL)
        request_id = f"r{number}"
        for attempt in range(3):
            try:
                reply = await client.send(
                    nc, AGENT, "increment", {"by": 1}, request_id=request_id, timeout=2.0
                )
            except AgentUnavailableError:  # timed out: re-sent, as a client does
                continue
            assert reply["ok"], reply
            seq = first_seq.setdefault(request_id, reply["seq"])
            assert reply["seq"] == seq, (request_id, attempt, reply)
        assert request_id in first_seq, f"{request_id} never answered"
    events = await check_log(nc, nc.jetstream(), AGENT)
    assert sorted(e.request_id or "" for e in events) == sorted(first_seq)
