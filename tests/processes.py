"""Real processes for the supervision tests, and what the tests observe of them.

``ProcessGroup`` starts bus services as ``o-bus run ...`` child processes (each in its own
session, as ``o-bus up`` does), with a per-test marker in their environment. The agent
processes a supervisor starts inherit that marker, so at teardown every process of the test,
including agents that outlived their supervisor, is found again and killed by PID; nothing
else on the machine is touched.

``HeartbeatWatch`` records the heartbeats on ``o.hb.*``; the other helpers read the
supervisor's system events (stream ``O_SYSTEM``) and its records (bucket ``o_supervisor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.errors import NotFoundError as JsNotFoundError
from pydantic import ValidationError
from support import WAIT_SECONDS, collect_events, eventually

from o_bus import client
from o_bus.common.answers import until_answered
from o_bus.common.children import ChildProcess
from o_bus.errors import AgentUnavailableError
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.store import layout
from o_bus.store.event_log import StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.supervision.records import AgentSupervision, SystemEvent

__all__ = [
    "Beat",
    "HeartbeatWatch",
    "ProcessGroup",
    "check_log",
    "send_until_ok",
    "supervision_record",
    "system_events",
    "system_mark",
    "wait_for_system_event",
]

MARKER_ENV = "O_BUS_TEST_PROCESS_GROUP"
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


class ProcessGroup:
    """Bus services of one test, started as child processes; ``close`` kills all of them."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.marker = uuid.uuid4().hex
        self.services: list[ChildProcess] = []
        self._subreaper = False

    def adopt_orphans(self) -> None:
        """Make this (the test) process the child subreaper until ``close``: agent processes
        orphaned by a dead supervisor become its children, and since it does not wait for
        them, one that dies stays a zombie, as under a container init (or an ``o-bus up``
        running as PID 1) that does not reap orphans. ``close`` reaps them."""
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        self._subreaper = True

    def spawn(self, service: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        """Start ``o-bus run SERVICE --nats URL ARGS``; its output goes to a log file."""
        return self.spawn_cli(service, "run", service, "--nats", self.url, *args, env=env)

    def spawn_cli(self, label: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        """Start ``o-bus ARGS`` (for example ``up``) as a service of this group."""
        environment = {k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}
        environment.update(env or {})
        environment[MARKER_ENV] = self.marker
        log = self.log_dir / f"{label}-{len(self.services)}.log"
        command = [sys.executable, "-m", "o_bus.cli.main"]
        child = ChildProcess(label, [*command, *args], log, env=environment)
        self.services.append(child)
        return child

    def output(self, child: ChildProcess) -> str:
        """What a service started here has written so far (stdout and stderr)."""
        assert child.log_path is not None
        return child.log_path.read_text(errors="replace")

    def kill(self, child: ChildProcess) -> int:
        """SIGKILL one service started here; return its exit status."""
        return child.kill()

    def pids(self) -> set[int]:
        """Live processes of this group that are not services started here (the agents)."""
        mine = {proc.pid for proc in self.services}
        return {pid for pid in _pids_with_env(MARKER_ENV, self.marker) if pid not in mine}

    def pid_alive(self, pid: int) -> bool:
        """Whether ``pid`` is still a live process of this group (not a zombie, not reused)."""
        return pid in _pids_with_env(MARKER_ENV, self.marker)

    def close(self) -> None:
        """Kill the services first (so nothing is restarted), then every agent process."""
        for proc in self.services:
            self.kill(proc)
        deadline = time.monotonic() + WAIT_SECONDS
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self._subreaper:
            self._reap_orphans()
        assert not left, f"agent processes {sorted(left)} survived the teardown"

    def _reap_orphans(self) -> None:
        """Wait for the dead Python processes that were reparented to this one, then stop
        being a subreaper. (Only zombies named python*: a fixture's nats-server is left.)"""
        for pid in _zombie_children("python"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        self._subreaper = False

    def log_tails(self, lines: int = 40) -> str:
        """The end of each service's log, for a failing test's report."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _pids_with_env(name: str, value: str) -> Iterator[int]:
    """Live processes whose initial environment has ``name=value`` (zombies have none)."""
    wanted = f"{name}={value}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environ.split(b"\0"):
            yield int(entry)


def _zombie_children(command_prefix: str) -> Iterator[int]:
    """Zombie children of this process whose command name starts with ``command_prefix``."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state == "Z" and int(ppid) == me and comm.startswith(command_prefix):
            yield int(entry)


# -- heartbeats ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beat:
    at: float  # time.monotonic() when received
    heartbeat: Heartbeat


class HeartbeatWatch:
    """Every heartbeat of every agent process since ``start``."""

    def __init__(self) -> None:
        self.beats: list[Beat] = []
        self._sub: Subscription | None = None

    async def start(self, nc: Client) -> HeartbeatWatch:
        async def on_beat(msg: Msg) -> None:
            with contextlib.suppress(ValidationError):
                beat = Heartbeat.model_validate_json(msg.data)
                self.beats.append(Beat(time.monotonic(), beat))

        self._sub = await nc.subscribe(layout.HEARTBEAT_PREFIX + "*", cb=on_beat)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def since(self, agent: str, start: float) -> list[Heartbeat]:
        return [b.heartbeat for b in self.beats if b.at >= start and b.heartbeat.agent == agent]

    def live(self, agent: str, within: float = 0.6) -> dict[int, Heartbeat]:
        """The latest heartbeat of each process of ``agent`` heard in the last ``within`` s."""
        latest: dict[int, Heartbeat] = {}
        for beat in self.since(agent, time.monotonic() - within):
            latest[beat.pid] = beat
        return latest

    def pids_since(self, agent: str, start: float, role: str | None = None) -> set[int]:
        return {beat.pid for beat in self.since(agent, start) if role is None or beat.role == role}

    def serving(self, agent: str, *, standbys: int = 0) -> dict[str, list[int]] | None:
        """Pids by role when ``agent`` has one running active and ``standbys`` standbys."""
        live = self.live(agent)
        active = [p for p, b in live.items() if b.role == "active" and b.lifecycle == "running"]
        standby = [p for p, b in live.items() if b.role == "standby" and b.lifecycle == "standby"]
        if len(active) == 1 and len(standby) >= standbys:
            return {"active": active, "standby": standby}
        return None

    async def wait_role(self, agent: str, pid: int, role: str) -> Heartbeat:
        """The next heartbeat in which process ``pid`` of ``agent`` says it is ``role``."""

        async def probe() -> Heartbeat | None:
            beat = self.live(agent).get(pid)
            return beat if beat is not None and beat.role == role else None

        found: Heartbeat = await eventually(probe, what=f"{agent} process {pid} to be {role}")
        return found

    async def wait_serving(self, agent: str, *, standbys: int = 0) -> dict[str, list[int]]:
        async def probe() -> dict[str, list[int]] | None:
            return self.serving(agent, standbys=standbys)

        found: dict[str, list[int]] = await eventually(
            probe, what=f"{agent} to have an active process and {standbys} standby"
        )
        return found


# -- the supervisor's view -----------------------------------------------------------------------


async def system_mark(js: JetStreamContext) -> int:
    """The current end of stream O_SYSTEM: pass it as ``after`` to see only newer events."""
    info = await js.stream_info(layout.SYSTEM_STREAM)
    return info.state.last_seq


async def system_events(js: JetStreamContext, agent: str, after: int = 0) -> list[SystemEvent]:
    """Supervision events of ``agent`` stored after stream sequence ``after``, in order."""
    found: list[SystemEvent] = []
    seq = after + 1
    subject = layout.system_event_subject(agent)
    while True:
        try:
            msg = await js.get_msg(
                layout.SYSTEM_STREAM, seq=seq, subject=subject, next=True, direct=True
            )
        except JsNotFoundError:
            return found
        found.append(SystemEvent.model_validate_json(msg.data or b""))
        assert msg.seq is not None
        seq = msg.seq + 1


async def wait_for_system_event(
    js: JetStreamContext,
    agent: str,
    kind: str,
    *,
    after: int = 0,
    pid: int | None = None,
    match: Callable[[SystemEvent], bool] = lambda _: True,
    timeout: float = WAIT_SECONDS,
) -> SystemEvent:
    """The first ``kind`` event of ``agent`` after ``after`` (about ``pid``, if given)."""

    async def probe() -> SystemEvent | None:
        for event in await system_events(js, agent, after):
            if event.type == kind and (pid is None or event.pid == pid) and match(event):
                return event
        return None

    about = f" about pid {pid}" if pid is not None else ""
    found: SystemEvent = await eventually(
        probe, what=f"a {kind!r} system event of {agent}{about}", timeout=timeout
    )
    return found


async def supervision_record(js: JetStreamContext, agent: str) -> AgentSupervision | None:
    kv = await js.key_value(layout.SUPERVISOR_BUCKET)
    try:
        entry = await kv.get(agent)
    except KeyNotFoundError:
        return None
    return AgentSupervision.model_validate_json(entry.value or b"")


# -- requests and the log ------------------------------------------------------------------------


async def send_until_ok(
    nc: Client,
    agent: str,
    command: str,
    data: Any,
    request_id: str,
    *,
    attempt_timeout: float = 2.0,
    timeout: float = WAIT_SECONDS,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """Send, re-sending with the same id after each timeout (as a client would after losing
    a reply), until a successful reply comes. An error reply fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await client.send(
                nc,
                agent,
                command,
                data,
                request_id=request_id,
                timeout=attempt_timeout,
                traceparent=traceparent,
            )
        except AgentUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
            continue
        assert reply["ok"], reply
        return reply


async def check_log(nc: Client, js: JetStreamContext, agent: str) -> list[StoredEvent]:
    """The agent's events; fail unless they are contiguous and no request is in twice."""
    events = await collect_events(JetStreamEventLog(nc, js, agent))
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), [e.seq for e in events]
    twice = sorted(str(rid) for rid, n in Counter(e.request_id for e in events).items() if n > 1)
    assert not twice, f"requests applied twice: {twice}"
    return events


async def wait_for_service(nc: Client, service: str) -> None:
    """Until the bus service ``service`` (splitter, supervisor, arbiter...) answers."""
    await until_answered(nc, layout.service_status_subject(service), timeout=WAIT_SECONDS)
