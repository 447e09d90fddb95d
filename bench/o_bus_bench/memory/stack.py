"""The memory benchmark's processes: an embedded nats-server, the splitter, and the ``memory``
agent in its own process as the supervisor runs it (``o-bus run agent memory``), with its index
under the run's work dir. The agent can be stopped and started again (index rebuilds)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from nats.aio.client import Client

from o_bus.agent.catalogue import Catalogue
from o_bus.common.answers import until_answered
from o_bus.common.connect import connect
from o_bus.errors import OBusError
from o_bus.memory.projection import MEMORY_DIR_ENV
from o_bus.requests import query
from o_bus.runtime.registration import register_definitions
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus_bench.errors import BenchError
from o_bus_bench.stack import ServiceProcess

__all__ = ["AGENT", "MemoryStack"]

AGENT: Final = "memory"
READY_TIMEOUT: Final = 60.0


class MemoryStack:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.server = EmbeddedServer(work_dir / "nats", port=0)
        self.splitter: ServiceProcess | None = None
        self.agent: ServiceProcess | None = None
        self.index_dir = work_dir / "memory"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def index_path(self) -> Path:
        return self.index_dir / f"{AGENT}.sqlite"

    def pids(self) -> dict[str, int]:
        found = {"server": self.server.pid or 0}
        for child in (self.splitter, self.agent):
            if child is not None:
                found[child.name] = child.proc.pid
        return {name: pid for name, pid in found.items() if pid}

    def start(self) -> None:
        self.server.start()
        asyncio.run(self._prepare())
        python = sys.executable
        self.splitter = ServiceProcess(
            "splitter",
            [python, "-m", "o_bus.cli.main", "run", "splitter", "--nats", self.url],
            self.work_dir / "splitter.log",
        )
        self.start_agent()

    async def _prepare(self) -> None:
        async with connect(self.url, "o-bus-bench") as (_, js):
            await provision(js)
            await register_definitions(js, Catalogue.discover())

    def start_agent(self) -> None:
        """Start the agent process; its projection opens (or rebuilds) the index."""
        os.environ[MEMORY_DIR_ENV] = str(self.index_dir)  # inherited by the agent process
        self.agent = ServiceProcess(
            "agent",
            [sys.executable, "-m", "o_bus.cli.main", "run", "agent", AGENT, "--nats", self.url],
            self.work_dir / "agent.log",
        )

    def stop_agent(self, timeout: float = 20.0) -> None:
        if self.agent is not None:
            self.agent.terminate()
            self.agent.wait(timeout)
            self.agent = None

    def delete_index(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.index_path) + suffix).unlink(missing_ok=True)

    async def wait_ready(self, nc: Client) -> None:
        """Until the splitter routes and the agent answers queries."""
        deadline = time.monotonic() + READY_TIMEOUT
        for subject in (
            layout.service_status_subject("splitter"),
            layout.control_subject(AGENT, "status"),
        ):
            try:
                await until_answered(
                    nc,
                    subject,
                    timeout=deadline - time.monotonic(),
                    pause=0.05,
                    check=self._check_alive,
                )
            except TimeoutError:
                raise BenchError(f"no answer on {subject}") from None

    def _check_alive(self) -> None:
        for child in (self.splitter, self.agent):
            if child is not None:
                child.check_alive()

    async def stats(self, nc: Client) -> dict[str, Any]:
        try:
            reply = await query(nc, AGENT, "stats", timeout=10.0)
        except OBusError as err:
            raise BenchError(f"stats query failed: {err.message}") from err
        if not reply.get("ok"):
            raise BenchError(f"stats query failed: {reply}")
        result: dict[str, Any] = reply["result"]
        return result

    async def wait_applied(self, nc: Client, seq: int, timeout: float = 900.0) -> float:
        """Until the index has applied ``seq``; return when (perf_counter)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                applied = (await self.stats(nc))["index"]["applied_seq"]
            except BenchError:
                applied = -1  # the agent is still starting
            if applied >= seq:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise BenchError(f"the index did not reach seq {seq} in {timeout}s")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self.stop_agent()
        if self.splitter is not None:
            self.splitter.terminate()
            self.splitter.wait(10.0)
            self.splitter = None
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
