"""kill -9 of the agent process during a burst: no accepted request is lost, none applied twice.

The splitter and the agent host run as real child processes (`o-bus run ...`), as under
`o-bus up`. The client retries timed-out requests with the same id, as a real client would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import nats
import pytest
from nats.aio.client import Client

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.cli.up import register_definitions
from o_bus.errors import AgentUnavailableError
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision

pytestmark = pytest.mark.slow

REQUESTS = 1500
IN_FLIGHT = 48
RETRIES: Counter[str] = Counter()


def _spawn(service: str, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "o_bus.cli.main",
            "run",
            service,
            "--nats",
            url,
            "--snapshot-every",
            "200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


async def _wait_for(nc: Client, subject: str) -> None:
    for _ in range(300):
        try:
            await nc.request(subject, b"", timeout=0.2)
            return
        except nats.errors.Error:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered on {subject}")


def duplicates(replies: dict[str, dict[str, object]]) -> int:
    return sum(1 for reply in replies.values() if reply.get("duplicate"))


async def _send_until_ok(nc: Client, request_id: str, by: int) -> dict[str, object]:
    for _ in range(100):
        try:
            reply = await client.send(
                nc, "counter", "increment", {"by": by}, request_id=request_id, timeout=1.5
            )
        except AgentUnavailableError:
            RETRIES["timeouts"] += 1
            continue
        if reply["ok"]:
            return reply
        error = reply["error"]
        assert isinstance(error, dict)
        assert error["code"] == "unavailable", reply
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} never succeeded")


async def test_kill_9_during_burst_loses_nothing_and_applies_nothing_twice(
    nats_url: str, nc: Client, processes: list[subprocess.Popen[bytes]]
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue.discover())
    processes.append(_spawn("splitter", nats_url))
    processes.append(_spawn("agents", nats_url))
    await _wait_for(nc, "o.svc.splitter.status")
    await _wait_for(nc, layout.control_subject("counter", "status"))

    replies: dict[str, dict[str, object]] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            replies[f"r{i}"] = await _send_until_ok(nc, f"r{i}", 1 + i % 7)

    async def killer() -> None:
        # A short outage (in-flight requests are answered after recovery, from the WAL) and
        # one longer than the client timeout (clients re-send with the same id).
        for crash, downtime in enumerate((0.2, 2.0), 1):
            while len(replies) < REQUESTS // 3 * crash:
                await asyncio.sleep(0.01)
            victim = processes[1]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            await asyncio.sleep(downtime)
            processes[1] = _spawn("agents", nats_url)

    await asyncio.gather(killer(), *(sender() for _ in range(IN_FLIGHT)))
    assert RETRIES["timeouts"] > 0, "the long outage should have made clients re-send"
    assert duplicates(replies) > 0, "re-sent requests should get their original reply"

    events: list[StoredEvent] = []
    await JetStreamEventLog(nc, js, "counter").replay(lambda e: events.append(e) and False)
    per_request = Counter(e.request_id for e in events)
    assert not [rid for rid, n in per_request.items() if n > 1], "a request was applied twice"
    assert set(per_request) == set(replies), "an acknowledged request is missing from the log"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for request_id, reply in replies.items():
        reply_events = reply["events"]
        assert isinstance(reply_events, list)
        assert len(reply_events) == 1
        assert per_request[request_id] == 1

    # Every request the WAL accepted was processed exactly once.
    wal_ids: list[str] = []
    sub = await js.subscribe(layout.wal_subject("counter"), ordered_consumer=True)
    info = await js.stream_info(layout.WAL_STREAM)
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=5)
        wal_ids.append((msg.headers or {})["ce-id"])
    await sub.unsubscribe()
    assert set(wal_ids) == set(per_request)

    status = await nc.request(layout.control_subject("counter", "status"), b"", timeout=5)
    assert b'"seq":%d' % len(events) in status.data
    expected_total = sum(1 + i % 7 for i in range(REQUESTS))
    final = await _send_until_ok(nc, "final", 0)
    assert final["seq"] == REQUESTS + 1
    state = subprocess.run(
        [sys.executable, "-m", "o_bus.cli.main", "state", "counter", "--json", "--nats", nats_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'"value":{expected_total}' in state.stdout
