"""kill -9 of the agent process during a burst: no accepted request is lost, none applied twice.

The splitter and the agent host run as real child processes (`o-bus run ...`), as under
`o-bus up`. The client retries timed-out requests with the same id, as a real client would.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from nats.aio.client import Client
from processes import ProcessGroup, wait_for_service
from support import WAIT_SECONDS, eventually, run_cli

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.errors import AgentUnavailableError
from o_bus.runtime.registration import register_definitions
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision

pytestmark = pytest.mark.slow

REQUESTS = 1500
IN_FLIGHT = 48
SERVICE_OPTIONS = ("--snapshot-every", "200")


def duplicates(replies: dict[str, dict[str, object]]) -> int:
    return sum(1 for reply in replies.values() if reply.get("duplicate"))


async def _send_until_ok(
    nc: Client, request_id: str, by: int, timeouts: Counter[str]
) -> dict[str, object]:
    """Send until a successful reply, re-sending with the same id; ``timeouts`` counts the
    attempts that got no reply (the test's own count)."""
    for _ in range(100):
        try:
            reply = await client.send(
                nc, "counter", "increment", {"by": by}, request_id=request_id, timeout=1.5
            )
        except AgentUnavailableError:
            timeouts[request_id] += 1
            continue
        if reply["ok"]:
            return reply
        error = reply["error"]
        assert isinstance(error, dict)
        assert error["code"] == "unavailable", reply
        await asyncio.sleep(0.05)  # a client's pause before re-sending after `unavailable`
    raise AssertionError(f"request {request_id} never succeeded")


async def test_kill_9_during_burst_loses_nothing_and_applies_nothing_twice(
    nats_url: str, nc: Client, group: ProcessGroup
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue.discover())
    group.spawn("splitter", *SERVICE_OPTIONS)
    agents = group.spawn("agents", *SERVICE_OPTIONS)
    await wait_for_service(nc, "splitter")
    status = layout.control_subject("counter", "status")
    await until_answered(nc, status, timeout=WAIT_SECONDS)

    timeouts: Counter[str] = Counter()
    replies: dict[str, dict[str, object]] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            replies[f"r{i}"] = await _send_until_ok(nc, f"r{i}", 1 + i % 7, timeouts)

    async def killer() -> None:
        nonlocal agents
        # A short outage (in-flight requests are answered after recovery, from the WAL) and
        # one longer than the client timeout (clients re-send with the same id).
        for crash, downtime in enumerate((0.2, 2.0), 1):
            wanted = REQUESTS // 3 * crash

            async def enough_replies(wanted: int = wanted) -> bool:
                return len(replies) >= wanted

            await eventually(enough_replies, what=f"{wanted} replies before crash {crash}")
            group.kill(agents)
            await asyncio.sleep(downtime)  # the outage itself: what the test is about
            agents = group.spawn("agents", *SERVICE_OPTIONS)

    await asyncio.gather(killer(), *(sender() for _ in range(IN_FLIGHT)))
    assert timeouts.total() > 0, "the long outage should have made clients re-send"
    assert duplicates(replies) > 0, "re-sent requests should get their original reply"

    events: list[StoredEvent] = []

    def keep(event: StoredEvent) -> None:
        events.append(event)

    await JetStreamEventLog(nc, js, "counter").replay(keep)
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

    status_reply = await nc.request(layout.control_subject("counter", "status"), b"", timeout=5)
    assert b'"seq":%d' % len(events) in status_reply.data
    expected_total = sum(1 + i % 7 for i in range(REQUESTS))
    final = await _send_until_ok(nc, "final", 0, timeouts)
    assert final["seq"] == REQUESTS + 1
    code, out, err = await run_cli("state", "counter", "--json", "--nats", nats_url)
    assert code == 0, err
    assert f'"value":{expected_total}' in out
