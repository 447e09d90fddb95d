"""One benchmark server run: an embedded nats-server, the project's services, the raw services.

Everything listens on 127.0.0.1 on a free port, keeps its data in a private directory, and is
stopped by PID when the run ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import nats.errors
from nats.aio.client import Client

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.common.children import ChildProcess
from o_bus.common.connect import ConnectOptions, connect
from o_bus.config import StorageConfig
from o_bus.requests import request_headers
from o_bus.runtime.registration import register_definitions
from o_bus.security.bus import BusSecurity
from o_bus.security.identities import AGENT as AGENT_ROLE
from o_bus.security.identities import CLIENT
from o_bus.server.cluster import LocalCluster
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus.wire.codec import Encoding
from o_bus_bench.errors import BenchError
from o_bus_bench.raw import RAW_REQUEST_PREFIX, provision_raw, status_subject
from o_bus_bench.replies import all_replies

__all__ = ["AGENT", "PROJECT_SUBJECT", "RAW_SUBJECT", "Stack", "check_path"]

AGENT: Final = "counter"
PROJECT_SUBJECT: Final = layout.request_subject(AGENT)
RAW_SUBJECT: Final = RAW_REQUEST_PREFIX + AGENT
READY_TIMEOUT: Final = 30.0


async def check_path(nc: Client, subject: str) -> None:
    """One ``increment`` through a path (project or raw): it must succeed before it is
    measured."""
    headers = request_headers("increment", uuid.uuid4().hex, Encoding.JSON, "o-bus/bench")
    try:
        reply = await nc.request(subject, b'{"by": 1}', timeout=10.0, headers=headers)
    except nats.errors.Error as err:
        raise BenchError(f"a first request on {subject} got no reply: {err!r}") from err
    if b'"ok":true' not in reply.data.replace(b" ", b""):
        raise BenchError(f"a first request on {subject} failed: {reply.data!r}")


class ServiceProcess(ChildProcess):
    """A service process with its output in a log file."""

    def check_alive(self) -> None:
        if (ended := self.exited()) is not None:
            raise BenchError(ended)


class Stack:
    """Server + splitter + agent host + raw splitter + raw agent, for one server setting."""

    def __init__(
        self,
        work_dir: Path,
        sync_interval: str | None,
        nodes: int = 1,
        *,
        project_env: Mapping[str, str] | None = None,
        security: BusSecurity | None = None,
        splitters: int = 1,
    ) -> None:
        """``security``: credentials, permissions, TLS and store encryption as `o-bus up`
        sets them up (one node only); each process connects as its role. ``splitters``:
        project splitter processes in the queue group (the raw floor has one)."""
        self.splitters = splitters
        self.work_dir = work_dir
        self.project_env = project_env  # environment of the splitter and agent (None: ours)
        self.security = security
        self.sync_interval = sync_interval
        self.nodes = nodes
        # One server, or a local JetStream cluster with every stream replicated on each node.
        self.cluster = (
            LocalCluster(work_dir / "cluster", nodes, sync_interval=sync_interval)
            if nodes > 1
            else None
        )
        self.server = (
            self.cluster.servers[0]
            if self.cluster is not None
            else EmbeddedServer(
                work_dir / "nats",
                port=0,
                sync_interval=sync_interval,
                **(security.server_kwargs() if security is not None else {}),
            )
        )
        self.children: list[ServiceProcess] = []

    @property
    def url(self) -> str:
        return self.cluster.url if self.cluster is not None else self.server.url

    def pids(self) -> dict[str, int]:
        """PIDs of the measured processes, by role (``server``: the first node of a cluster)."""
        found = {"server": self.server.pid or 0}
        found.update({child.name: child.proc.pid for child in self.children})
        return {name: pid for name, pid in found.items() if pid}

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        else:
            self.server.start()
        asyncio.run(self._prepare())
        python = sys.executable
        splitter = [python, "-m", "o_bus.cli.main", "run", "splitter", "--nats", self.url]
        for name, role, cmd in (
            *(
                (_numbered("splitter", n), "splitter", splitter)
                for n in range(1, self.splitters + 1)
            ),
            # The agent process exactly as the supervisor runs it under `o-bus up`.
            (
                "agent",
                "agent",
                [python, "-m", "o_bus.cli.main", "run", "agent", AGENT, "--nats", self.url],
            ),
            (
                "raw-splitter",
                "raw",
                [python, "-m", "o_bus_bench.raw", "splitter", "--nats", self.url],
            ),
            ("raw-agent", "raw", [python, "-m", "o_bus_bench.raw", "agent", "--nats", self.url]),
        ):
            env = None if role == "raw" else self.project_env
            if self.security is not None:  # each as its own identity
                env = {**(env or os.environ), **(self.env(role) or {})}
            self.children.append(ServiceProcess(name, cmd, self.work_dir / f"{name}.log", env=env))
        asyncio.run(self._wait_ready())

    def env(self, role: str) -> dict[str, str] | None:
        """The environment of a process of ``role`` (splitter, agent, client; anything
        else, such as the raw services, connects as the operator); None without security."""
        if self.security is None:
            return None
        if role == "agent":
            options = self.security.options(AGENT_ROLE, AGENT)
        elif role in ("splitter", CLIENT):
            options = self.security.options(role)
        else:
            options = self.security.options()
        return {**os.environ, **options.env()}

    def options(self) -> ConnectOptions | None:
        return self.security.options() if self.security is not None else None

    async def _prepare(self) -> None:
        async with connect(self.url, "o-bus-bench", options=self.options()) as (_, js):
            await provision(js, StorageConfig(replicas=self.nodes))
            await register_definitions(js, Catalogue.discover())
            await provision_raw(js, replicas=self.nodes)

    async def _wait_ready(self) -> None:
        async with connect(self.url, "o-bus-bench", options=self.options()) as (nc, _):
            deadline = time.monotonic() + READY_TIMEOUT
            for subject in (
                layout.service_status_subject("splitter"),
                layout.control_subject(AGENT, "status"),
                status_subject("splitter"),
                status_subject("agent"),
            ):
                await self._until_answered(nc, subject, deadline)
            if self.splitters > 1:  # every splitter, not only the first to answer
                subject = layout.service_status_subject("splitter")
                try:
                    await all_replies(nc, subject, self.splitters, deadline - time.monotonic())
                except TimeoutError as err:
                    raise BenchError(str(err)) from None
            for subject in (PROJECT_SUBJECT, RAW_SUBJECT):
                await check_path(nc, subject)

    async def _until_answered(self, nc: Client, subject: str, deadline: float) -> None:
        def check_alive() -> None:
            for child in self.children:
                child.check_alive()

        try:
            await until_answered(
                nc, subject, timeout=deadline - time.monotonic(), check=check_alive
            )
        except TimeoutError:
            raise BenchError(f"no answer on {subject} within {READY_TIMEOUT}s") from None

    def stop(self, timeout: float = 10.0) -> None:
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children:
            child.wait(deadline - time.monotonic())
        self.children.clear()
        if self.cluster is not None:
            self.cluster.stop()
        else:
            self.server.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _numbered(name: str, n: int) -> str:
    """``splitter``, ``splitter-2``, ...: the first keeps the name the single one has."""
    return name if n == 1 else f"{name}-{n}"
