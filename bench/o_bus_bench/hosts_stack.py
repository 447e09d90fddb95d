"""The processes of `o-bus bench hosts`: an embedded nats-server, splitters and two named hosts
as `o-bus up` and `o-bus run host` start them, and the raw floor's services beside them.

The agents are copies of ``counter`` (``counter``, ``c2``, ``c3``...): each a fork of the
counter's empty history, so the same definition under another name. They are placed on the
hosts in turn (h1, h2, h1...) as a level needs them; each gets its own raw agent process too.
Every process is stopped by PID at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Final

from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.replay.fork import fork
from o_bus.runtime.registration import register_definitions
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.placement import PlacementStore
from o_bus.store.provision import provision
from o_bus_bench.raw import RAW_REQUEST_PREFIX, provision_raw, status_subject
from o_bus_bench.recovery.processes import kill_leftovers
from o_bus_bench.recovery.services import Service, run_command, stop_services, until_answered
from o_bus_bench.stack import AGENT, check_path

__all__ = ["HOSTS", "HostsStack", "agent_names"]

HOSTS: Final = ("h1", "h2")
CLIENT_NAME: Final = "o-bus-bench-hosts"


def agent_names(count: int) -> list[str]:
    """``counter``, ``c2``, ``c3``...: ``count`` agents of the counter's definition."""
    return [AGENT, *(f"c{number}" for number in range(2, count + 1))]


def _raw_command(role: str, url: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "o_bus_bench.raw", role, "--nats", url, *options]


def _children(pid: int) -> list[int]:
    """PIDs of a process's children, from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _agent_of(pid: int) -> str | None:
    """The agent ``pid`` runs (`o-bus run agent NAME ...`), from its command line."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for index in range(len(args) - 2):
        if args[index : index + 2] == [b"run", b"agent"]:
            return args[index + 2].decode()
    return None


class HostsStack:
    """Server, ``splitters`` splitters and raw splitters, hosts h1 and h2, raw agents."""

    def __init__(self, work_dir: Path, splitters: int, agents: int) -> None:
        self.work_dir = work_dir
        self.splitters = splitters
        self.names = agent_names(agents)
        self.server = EmbeddedServer(work_dir / "nats", port=0)
        self.services: list[Service] = []
        self.placed: dict[str, str] = {}  # agent -> its host
        self.seen: dict[int, str] = {}  # agent process -> its agent: none may outlive the run

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        """The server, the store with every agent registered, the services, until they answer."""
        self.server.start()
        asyncio.run(self._prepare())
        for number in range(1, self.splitters + 1):
            self._spawn(f"splitter-{number}", run_command("splitter", self.url))
            self._spawn(f"raw-splitter-{number}", _raw_command("splitter", self.url))
        for host in HOSTS:
            self._spawn(host, run_command("host", self.url, "--name", host))
        asyncio.run(self._until_ready())

    def _spawn(self, name: str, command: list[str]) -> None:
        self.services.append(Service(name, command, self.work_dir / f"{name}.log"))

    def check_alive(self) -> None:
        """BenchError (with the end of its log) if a service has exited."""
        for service in self.services:
            service.check_alive()

    async def _prepare(self) -> None:
        async with connect(self.url, CLIENT_NAME) as (nc, js):
            await provision(js)
            await register_definitions(js, Catalogue([Catalogue.discover().get(AGENT)]))
            for name in self.names[1:]:
                await fork(nc, js, AGENT, 0, name)  # a new agent running the counter's code
            await provision_raw(js)

    async def _until_ready(self) -> None:
        async with connect(self.url, CLIENT_NAME) as (nc, _):
            for subject in (
                layout.service_status_subject("splitter"),
                layout.service_status_subject("host"),
                status_subject("splitter"),
            ):
                await until_answered(nc, subject, self.check_alive)

    def place(self, count: int) -> dict[str, str]:
        """Place the first ``count`` agents (those not yet placed: on h1, h2, h1... in turn),
        start their raw agents, and wait until each path answers. Returns agent -> host."""
        asyncio.run(self._place(self.names[:count]))
        return {name: self.placed[name] for name in self.names[:count]}

    async def _place(self, names: list[str]) -> None:
        async with connect(self.url, CLIENT_NAME) as (nc, js):
            placements = PlacementStore(js)
            for index, name in enumerate(names):
                if name in self.placed:
                    continue
                host = HOSTS[index % len(HOSTS)]
                await placements.place(name, host, by=CLIENT_NAME)  # what `o-bus place` does
                self.placed[name] = host
                agent = _raw_command("agent", self.url, "--agent", name)
                self._spawn(f"raw-agent-{name}", agent)
            for name in names:
                await until_answered(nc, layout.control_subject(name, "status"), self.check_alive)
                await until_answered(nc, status_subject("agent", name), self.check_alive)
                await check_path(nc, layout.request_subject(name))
                await check_path(nc, RAW_REQUEST_PREFIX + name)

    def project_pids(self) -> dict[str, int]:
        """The project path's processes by name: server, splitters, hosts, ``HOST/AGENT``."""
        pids = {"server": self.server.pid or 0}
        pids.update({s.name: s.pid for s in self.services if not s.name.startswith("raw-")})
        pids.update(self._agent_pids())
        return {name: pid for name, pid in pids.items() if pid}

    def _agent_pids(self) -> dict[str, int]:
        """The hosts' agent processes by ``HOST/AGENT`` (each remembered in ``seen``)."""
        found = {}
        for service in self.services:
            if service.name in HOSTS:
                for pid in _children(service.pid):
                    if (agent := _agent_of(pid)) is not None:
                        self.seen[pid] = agent
                        found[f"{service.name}/{agent}"] = pid
        return found

    def raw_pids(self) -> dict[str, int]:
        """The raw floor's processes by name: server, raw splitters, raw agents."""
        pids = {"server": self.server.pid or 0}
        pids.update({s.name: s.pid for s in self.services if s.name.startswith("raw-")})
        return {name: pid for name, pid in pids.items() if pid}

    def stop(self) -> None:
        """Stop every service (the hosts stop their agent processes), then any agent process
        that outlived its host, then the server."""
        self._agent_pids()
        stop_services(self.services)
        self.services.clear()
        for agent in set(self.seen.values()):
            kill_leftovers(
                {pid for pid, name in self.seen.items() if name == agent}, self.url, agent
            )
        self.server.stop()
