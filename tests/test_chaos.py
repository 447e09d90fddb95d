"""Chaos: agent processes killed (-9) and paused (SIGSTOP, later SIGCONT) at random under load.

The splitter and the supervisor run as child processes (`o-bus run ...`); the supervisor runs
``counter`` with a warm standby. Clients send ``increment`` with unique ids and random amounts
and re-send a timed-out request with the same id, as a real client does. The chaos only ever
signals agent processes it learned from their heartbeats on ``o.hb.counter`` (and checks their
command line names this test's server). Afterwards: every acknowledged request is in the log
exactly once, nothing that was never sent is, the sequence is contiguous, the active process
reports the end of the log, the state (rebuilt from snapshot + tail, and replayed in full) is
the fold of the log, and every request was answered, so that state is the sum of what was
acknowledged. A request re-sent for ``REQUEST_DEADLINE`` seconds without any reply is given up
and reported at the end (``ResendNeverAnswered``), after every other check.

``O_BUS_CHAOS_SEED`` replays the same random choices (timing still varies).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError
from pydantic_core import from_json
from support import eventually

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.common.children import ChildProcess
from o_bus.errors import AgentUnavailableError
from o_bus.replay.rebuild import rebuild
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.runtime.registration import register_definitions
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.store.snapshots import SnapshotStore
from o_bus.supervision.records import SupervisionPolicy

pytestmark = pytest.mark.slow

AGENT = "counter"
CHAOS_SECONDS = 30.0
CLIENTS = 24
REQUEST_TIMEOUT = 1.0  # then re-send with the same id
REQUEST_DEADLINE = 30.0  # a request must succeed within this, whatever the chaos
TRANSIENT_CODES = {"unavailable", "internal_error", "concurrency_conflict"}
# Never escalate; keep the restart backoff short so that processes keep coming back.
POLICY = SupervisionPolicy(
    standby=True, max_restarts=100_000, period=10.0, backoff_initial=0.05, backoff_max=1.0
)
SEED = int(os.environ.get("O_BUS_CHAOS_SEED", random.randrange(2**32)))


class ResendNeverAnswered(AssertionError):
    """A request re-sent with the same id got no reply at all within the deadline."""


def _is_ours(pid: int, url: str) -> bool:
    """``pid`` runs `o-bus run agent counter` against this test's server (so a recycled pid of
    some other process is never signalled)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"agent" in args and AGENT.encode() in args and url.encode() in args


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found.update(int(p) for p in (task / "children").read_text().split())
    return found


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


@dataclass
class Chaos:
    """The processes of this test: services we started, agent processes we learned of."""

    url: str
    log_dir: Path
    services: dict[str, ChildProcess] = field(default_factory=dict)
    agent_pids: set[int] = field(default_factory=set)
    stopped: set[int] = field(default_factory=set)

    def start(self, service: str) -> None:
        self.services[service] = ChildProcess(
            service,
            [sys.executable, "-m", "o_bus.cli.main", "run", service, "--nats", self.url],
            self.log_dir / f"{service}.log",
        )

    def check_services(self) -> None:
        for child in self.services.values():
            assert child.running(), child.exited()

    def teardown(self) -> None:
        for pid in self.stopped:
            if _is_ours(pid, self.url):
                _signal(pid, signal.SIGCONT)
        supervisor = self.services.get("supervisor")
        if supervisor is not None and supervisor.running():
            # Freeze it so it starts nothing more, then take its children with it.
            _signal(supervisor.pid, signal.SIGSTOP)
            self.agent_pids |= _children(supervisor.pid)
            _signal(supervisor.pid, signal.SIGKILL)
        for pid in self.agent_pids:
            if _is_ours(pid, self.url):
                _signal(pid, signal.SIGKILL)
        for child in self.services.values():
            child.kill()


@pytest.fixture
def chaos(nats_url: str, tmp_path: Path) -> Iterator[Chaos]:
    found = Chaos(nats_url, tmp_path)
    try:
        yield found
    finally:
        found.teardown()


class Beats:
    """The agent processes heard on ``o.hb.counter``: pid -> (time heard, role, lifecycle)."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self.heard: dict[int, tuple[float, str, str]] = {}

    async def on_beat(self, msg: Msg) -> None:
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        self.chaos.agent_pids.add(beat.pid)
        self.heard[beat.pid] = (time.monotonic(), beat.role, beat.lifecycle)

    def live(self, role: str | None = None) -> list[int]:
        recent = time.monotonic() - 0.5
        return [
            pid
            for pid, (at, heard_role, _) in self.heard.items()
            if at > recent and (role is None or heard_role == role)
        ]

    def serving(self) -> bool:
        return any(self.heard[pid][2] == "running" for pid in self.live("active"))


async def test_chaos_kill_and_pause_lose_nothing_and_apply_nothing_twice(
    nats_url: str, nc: Client, chaos: Chaos
) -> None:
    rng = random.Random(SEED)
    where = f"(seed {SEED}; service logs in {chaos.log_dir})"
    js = nc.jetstream()
    await provision(js)
    definition = Catalogue.discover().get(AGENT)
    await register_definitions(js, Catalogue([definition]), POLICY)
    beats = Beats(chaos)
    await nc.subscribe(layout.heartbeat_subject(AGENT), cb=beats.on_beat)
    chaos.start("splitter")
    chaos.start("supervisor")

    async def ready() -> bool:
        chaos.check_services()
        return beats.serving() and bool(beats.live("standby"))

    await eventually(ready, what=f"an active and a standby counter process {where}")

    sent: dict[str, int] = {}
    acked: dict[str, int] = {}
    unanswered: dict[str, int] = {}  # re-sent until the deadline, never answered
    seen: Counter[str] = Counter()
    stop_load = asyncio.Event()

    async def until_ok(request_id: str, by: int) -> dict[str, Any] | None:
        deadline = time.monotonic() + REQUEST_DEADLINE
        while time.monotonic() < deadline:
            try:
                reply = await client.send(
                    nc,
                    AGENT,
                    "increment",
                    {"by": by},
                    request_id=request_id,
                    timeout=REQUEST_TIMEOUT,
                )
            except AgentUnavailableError:
                seen["timeout"] += 1
                continue
            if reply["ok"]:
                return reply
            code = reply["error"]["code"]
            assert code in TRANSIENT_CODES, f"{reply} {where}"
            seen[code] += 1
            await asyncio.sleep(0.05)
        return None

    async def load(number: int) -> None:
        count = 0
        while not stop_load.is_set():
            count += 1
            request_id, by = f"c{number}-{count}", rng.randint(-50, 100)
            sent[request_id] = by
            reply = await until_ok(request_id, by)
            if reply is None:
                unanswered[request_id] = by
                continue
            assert reply["request_id"] == request_id
            assert [event["data"] for event in reply["events"]] == [{"by": by}], reply
            acked[request_id] = by
            seen["duplicate reply"] += bool(reply.get("duplicate"))

    async def resume_later(pid: int, pause: float) -> None:
        await asyncio.sleep(pause)
        if _is_ours(pid, nats_url):
            _signal(pid, signal.SIGCONT)
        chaos.stopped.discard(pid)

    async def monkey() -> None:
        resumes: list[asyncio.Task[None]] = []
        end = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            chaos.check_services()
            active, every = beats.live("active"), beats.live()
            pool = active if active and rng.random() < 0.7 else every
            targets = [pid for pid in pool if _is_ours(pid, nats_url)]
            if not targets:
                continue
            pid = rng.choice(targets)
            if rng.random() < 0.6:
                _signal(pid, signal.SIGKILL)
                seen["kill -9"] += 1
            else:
                # Shorter than the heartbeat timeout: a stall. Longer: declared hung, replaced,
                # and fenced when it wakes up.
                chaos.stopped.add(pid)
                _signal(pid, signal.SIGSTOP)
                seen["SIGSTOP"] += 1
                resumes.append(asyncio.create_task(resume_later(pid, rng.uniform(0.1, 2.5))))
        await asyncio.gather(*resumes)

    clients = [asyncio.create_task(load(number)) for number in range(CLIENTS)]
    await monkey()
    stop_load.set()
    await asyncio.wait_for(asyncio.gather(*clients), REQUEST_DEADLINE + 30)
    assert seen["kill -9"] >= 3, f"too little chaos: {seen} {where}"
    assert seen["SIGSTOP"] >= 1, f"too little chaos: {seen} {where}"
    assert sent.keys() == acked.keys() | unanswered.keys()

    # Settled: the agent serves again and says it reached the end of the log.
    eventlog = JetStreamEventLog(nc, js, AGENT)
    end = await eventlog.last_position()

    async def caught_up() -> bool:
        chaos.check_services()
        try:
            status = await nc.request(layout.control_subject(AGENT, "status"), b"", timeout=0.5)
        except nats.errors.Error:  # no active process right now: ask again
            return False
        return bool(from_json(status.data)["seq"] == end.seq)

    await eventually(caught_up, what=f"the active process to report seq {end.seq} {where}")

    events: list[StoredEvent] = []
    await eventlog.replay(events.append)
    per_request = Counter(event.request_id or "" for event in events)
    twice = sorted(rid for rid, n in per_request.items() if n > 1)
    assert not twice, f"requests applied more than once: {twice[:10]} {where}"
    missing = sorted(set(acked) - set(per_request))
    assert not missing, f"acknowledged but not in the log: {missing[:10]} {where}"
    unknown = sorted(set(per_request) - set(sent))
    assert not unknown, f"in the log but never sent: {unknown[:10]} {where}"
    assert [event.seq for event in events] == list(range(1, len(events) + 1)), where
    folded = 0
    for event in events:
        by = from_json(event.data)["by"]
        assert event.request_id is not None
        assert by == sent[event.request_id], f"event {event.seq} has the wrong amount {where}"
        folded += by

    snapshots = SnapshotStore(js)
    from_snapshot = await rebuild(definition, eventlog, snapshots)
    full = await rebuild(definition, eventlog, None)
    for rebuilt in (from_snapshot, full):
        assert rebuilt.position.seq == len(events), where
        assert rebuilt.state.model_dump() == {"value": folded, "increments": len(events)}, where
    print(f"chaos {where}: {len(events)} events, {len(unanswered)} unanswered, {dict(seen)}")
    if unanswered:
        in_log = sum(1 for request_id in unanswered if request_id in per_request)
        raise ResendNeverAnswered(
            f"{len(unanswered)} requests re-sent with the same id for {REQUEST_DEADLINE:g}s "
            f"never got a reply ({in_log} of them are in the log) {where}"
        )
    assert folded == sum(acked.values()), where
