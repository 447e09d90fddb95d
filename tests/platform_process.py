"""`o-bus up` as a real process for tests, the processes it runs, and a test's client of it.

``PlatformClient`` is what an end-to-end test talks to: the platform `o-bus up` runs (one per
test module, see ``up_platform`` in conftest.py), with a fresh agent per test
(:meth:`PlatformClient.fresh`), so tests stay independent without a platform each.

Every process of one platform (services, nats-server, agents) inherits ``O_BUS_PLATFORM_PID``
from `up`, so the test finds them all again from `/proc` and, at teardown, kills by PID any
that survived; nothing else on the machine is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import WAIT_SECONDS, eventually

from o_bus.agent.catalogue import Catalogue
from o_bus.client import send
from o_bus.errors import NotFoundError
from o_bus.platform.lineage import PLATFORM_PID_ENV
from o_bus.server.embedded import find_nats_server
from o_bus.store import layout
from o_bus.store.event_log import EventLog
from o_bus.store.event_records import utc_now
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.registry import AgentRecord, Registry
from o_bus.store.snapshots import SnapshotStore

__all__ = ["PlatformClient", "UpProcess", "command_line", "pids_with_env", "platform_pids"]

_UP_LINE = re.compile(r"O is up\. NATS: (\S+)")


def pids_with_env(name: str, value: str) -> set[int]:
    """Live processes whose initial environment has ``name=value`` (zombies have none)."""
    wanted = f"{name}={value}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.add(int(entry))
    return found


def platform_pids(up_pid: int) -> set[int]:
    """Every live process started (directly or not) by the `o-bus up` with PID ``up_pid``."""
    return pids_with_env(PLATFORM_PID_ENV, str(up_pid))


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class UpProcess:
    """One `o-bus up --data-dir DIR --port 0 ...` child process; output in ``DIR.log``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: IO[bytes] | None = None
        self._offset = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}
        self._log = self.log_path.open("ab")
        self._offset = self._log.tell()
        command = [sys.executable, "-m", "o_bus.cli.main", "up", "--data-dir", str(self.data_dir)]
        command += ["--port", "0", "--metrics-port", "0", "--console-port", "0", *self.args]
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        return self.proc

    def wait_up(self, timeout: float = WAIT_SECONDS * 2) -> str:
        """Block until `up` says it is up; return its NATS URL."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (match := _UP_LINE.search(self.output())) is not None:
                self.url = match.group(1)
                return self.url
            assert self.proc.poll() is None, f"o-bus up exited:\n{self.output()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"o-bus up not up in {timeout}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        """What this run of `up` printed (the log file may hold earlier runs too)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def children(self, service: str) -> list[int]:
        """PIDs of the running ``o-bus run SERVICE`` processes of this platform."""
        return sorted(
            pid for pid in platform_pids(self.pid) if command_line(pid)[3:5] == ["run", service]
        )

    def server_pid(self) -> int | None:
        """The PID of the platform's nats-server, None while there is none."""
        found = [p for p in platform_pids(self.pid) if command_line(p)[:1] == [self._server]]
        return found[0] if found else None

    @property
    def _server(self) -> str:
        return str(find_nats_server())

    def close(self) -> None:
        """Kill `up` and whatever of its platform is left, by PID."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            for pid in _until_gone(lambda: platform_pids(self.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()


def _until_gone(probe: object) -> Iterator[int]:
    assert callable(probe)
    deadline = time.monotonic() + 10.0
    while (left := probe()) and time.monotonic() < deadline:
        yield from left
        time.sleep(0.1)


class PlatformClient:
    """A test's connection to a running `o-bus up`, and the fresh agents it registered there."""

    def __init__(self, up: UpProcess, nc: Client, spares: dict[str, list[str]]) -> None:
        self.up, self.nc = up, nc
        self.url = up.url
        self.js: JetStreamContext = nc.jetstream()
        self.agents: list[str] = []
        self.spares = spares  # per definition: registered, unused (shared by the module's tests)

    async def fresh(self, definition: str) -> str:
        """A new agent running the installed ``definition``, named after it, with an empty
        history; returned once its process serves and every splitter routes it.

        The next test's agent is registered now, so that its process starts while this test
        runs (an agent process takes about as long to start as a short test takes)."""
        spares = self.spares.setdefault(definition, [])
        name = spares.pop(0) if spares else await self._register(definition)
        spares.append(await self._register(definition))
        self.agents.append(name)
        await self.wait_serving(name)
        await self.wait_routed(name)
        return name

    async def _register(self, definition: str) -> str:
        name = f"{definition}-{uuid.uuid4().hex[:8]}"
        commands = sorted(Catalogue.discover().get(definition).command_types)
        await ensure_agent_stream(self.js, name)
        await Registry(self.js).register(
            AgentRecord(name=name, definition=definition, commands=commands, created_at=utc_now())
        )
        return name

    async def send(self, agent: str, command: str, data: Any = None, **kwargs: Any) -> Any:
        return await send(self.nc, agent, command, data, **kwargs)

    def log(self, agent: str) -> EventLog:
        return JetStreamEventLog(self.nc, self.js, agent)

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.js)

    async def status(self, agent: str) -> dict[str, Any] | None:
        """The active process's status (seq, lifecycle, pid...), None while none answers."""
        try:
            msg = await self.nc.request(layout.control_subject(agent, "status"), b"", timeout=1)
        except nats.errors.Error:
            return None
        found: dict[str, Any] = json.loads(msg.data)
        return found

    async def wait_serving(self, agent: str, *, not_pid: int | None = None) -> dict[str, Any]:
        """The status of ``agent``'s active process once it runs (and is not ``not_pid``)."""

        async def running() -> dict[str, Any] | None:
            status = await self.status(agent)
            if status is None or status["lifecycle"] != "running" or status["pid"] == not_pid:
                return None
            return status

        found: dict[str, Any] = await eventually(running, what=f"{agent} to serve")
        return found

    async def wait_routed(self, agent: str) -> None:
        """Until every splitter of the platform routes requests to ``agent``."""
        splitters = len(self.up.children("splitter"))

        async def all_route() -> bool:
            inbox = self.nc.new_inbox()
            answers: asyncio.Queue[bytes] = asyncio.Queue()

            async def on_answer(msg: Any) -> None:
                answers.put_nowait(msg.data)

            sub = await self.nc.subscribe(inbox, cb=on_answer)
            try:
                await self.nc.publish(layout.service_status_subject("splitter"), b"", reply=inbox)
                routed = 0
                with contextlib.suppress(TimeoutError):
                    while routed < splitters:
                        answer = json.loads(await asyncio.wait_for(answers.get(), 1.0))
                        routed += agent in answer.get("agents", [])
                return routed >= splitters
            finally:
                await sub.unsubscribe()

        await eventually(all_route, what=f"every splitter to route {agent}")

    async def restart(self, agent: str) -> dict[str, Any]:
        """kill -9 the agent's active process; return the status of the one that replaces it
        (started by the supervisor, recovering from snapshot and log)."""
        before = await self.wait_serving(agent)
        os.kill(before["pid"], signal.SIGKILL)
        return await self.wait_serving(agent, not_pid=before["pid"])

    async def close(self) -> None:
        """Unregister this test's agents (their processes stop; their history stays)."""
        registry = Registry(self.js)
        for name in self.agents:
            with contextlib.suppress(NotFoundError):
                await registry.remove(name)
