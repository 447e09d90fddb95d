"""Helpers shared by the integration tests: the platform in-process, log readers, the CLI.

``running_platform(url)`` does in one process what ``o-bus up`` does with child processes:
provision the streams, register the installed definitions, start a splitter and an agent
host (each on its own NATS connection), and wait until the agents' workers serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError as JsNotFoundError

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.lifecycle import LifecycleState
from o_bus.client import send
from o_bus.common.connect import connect
from o_bus.config import RuntimeConfig, StorageConfig
from o_bus.handlers.splitter.service import Splitter
from o_bus.runtime.host import AgentHost
from o_bus.runtime.registration import register_definitions
from o_bus.store import layout
from o_bus.store.event_log import EventLog, StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.store.snapshots import SnapshotStore

__all__ = [
    "DEFAULT_AGENTS",
    "Platform",
    "cli_json_lines",
    "collect_events",
    "dead_letter",
    "eventually",
    "read_subject",
    "run_cli",
    "running_platform",
]

DEFAULT_AGENTS = ("counter", "echo")
WAIT_SECONDS = 30.0  # upper bound for "eventually"; a hang guard, never a performance check


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, what: str, timeout: float = WAIT_SECONDS
) -> Any:
    """Call ``probe`` until it returns something truthy; fail with ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Platform:
    """A running splitter + agent host, and a client connection to talk to them."""

    url: str
    nc: Client
    js: JetStreamContext
    config: RuntimeConfig
    splitter: Splitter
    host: AgentHost | None = None
    agents: tuple[str, ...] = DEFAULT_AGENTS
    extra_definitions: tuple[str, ...] = ()  # module:attr or file.py:attr, beside the installed
    _host_conn: contextlib.AbstractAsyncContextManager[Any] | None = field(default=None, repr=False)

    async def send(self, agent: str, command: str, data: Any = None, **kwargs: Any) -> Any:
        return await send(self.nc, agent, command, data, **kwargs)

    def log(self, agent: str) -> EventLog:
        return JetStreamEventLog(self.nc, self.js, agent)

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.js)

    async def start_host(self, config: RuntimeConfig | None = None) -> AgentHost:
        assert self.host is None, "a host is already running"
        if config is not None:
            self.config = config
        conn = connect(self.url, "test-agent-host")
        nc, js = await conn.__aenter__()
        self._host_conn = conn
        catalogue = Catalogue.discover(list(self.extra_definitions))
        self.host = AgentHost(nc, js, catalogue, self.config)
        await self.host.start()
        await self.wait_for_workers(*self.agents)
        return self.host

    async def stop_host(self) -> None:
        if self.host is not None:
            host, self.host = self.host, None
            await host.stop()
        if self._host_conn is not None:
            conn, self._host_conn = self._host_conn, None
            await conn.__aexit__(None, None, None)

    async def restart_host(self, config: RuntimeConfig | None = None) -> AgentHost:
        await self.stop_host()
        return await self.start_host(config)

    async def wait_for_workers(self, *names: str) -> None:
        async def ready() -> bool:
            host = self.host
            if host is None:
                return False
            return all(
                name in host.workers and host.workers[name].lifecycle is LifecycleState.RUNNING
                for name in names
            )

        await eventually(ready, what=f"workers {names} to be running")

    async def wait_for_route(self, name: str) -> None:
        async def routed() -> bool:
            return name in self.splitter.routes.commands

        await eventually(routed, what=f"the splitter to route {name!r}")


@contextlib.asynccontextmanager
async def running_platform(
    url: str,
    *,
    config: RuntimeConfig | None = None,
    storage: StorageConfig | None = None,
    agents: Iterable[str] = DEFAULT_AGENTS,
    extra_definitions: Iterable[str] = (),
) -> AsyncIterator[Platform]:
    """Provision, register, start a splitter and an agent host; stop all of it on exit.

    The host runs every registered agent; ``agents`` are the ones waited for before yielding.
    """
    config = config or RuntimeConfig()
    async with contextlib.AsyncExitStack() as stack:
        nc, js = await stack.enter_async_context(connect(url, "test-client"))
        await provision(js, storage or StorageConfig(storage="file"))
        extra = tuple(extra_definitions)
        await register_definitions(js, Catalogue.discover(list(extra)))
        snc, sjs = await stack.enter_async_context(connect(url, "test-splitter"))
        splitter = Splitter(snc, sjs, config)
        await splitter.start()
        stack.push_async_callback(splitter.stop)
        platform = Platform(
            url, nc, js, config, splitter, agents=tuple(agents), extra_definitions=extra
        )
        stack.push_async_callback(platform.stop_host)
        await platform.start_host()
        yield platform


async def collect_events(
    log: EventLog, *, after_stream_seq: int = 0, until_stream_seq: int | None = None
) -> list[StoredEvent]:
    seen: list[StoredEvent] = []
    await log.replay(
        seen.append, after_stream_seq=after_stream_seq, until_stream_seq=until_stream_seq
    )
    return seen


async def read_subject(js: JetStreamContext, stream: str, subject: str) -> list[RawStreamMsg]:
    """Every stored message of ``subject`` in stream order, read one by one (no consumer)."""
    found: list[RawStreamMsg] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True, direct=True)
        except JsNotFoundError:
            return found
        found.append(msg)
        assert msg.seq is not None
        seq = msg.seq + 1


async def dead_letter(
    js: JetStreamContext, agent: str | None, request_id: str | None
) -> RawStreamMsg:
    """The dead letter of (agent, request id); rejections are written in the background."""

    async def probe() -> RawStreamMsg | None:
        try:
            return await js.get_last_msg(
                layout.DLQ_STREAM, layout.dlq_subject(agent, request_id), direct=True
            )
        except JsNotFoundError:
            return None

    found: RawStreamMsg = await eventually(probe, what=f"a dead letter for {agent}/{request_id}")
    return found


async def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = WAIT_SECONDS * 2
) -> tuple[int, str, str]:
    """Run ``o-bus ARGS`` in a child process, with ``env`` added to the environment; return
    (exit code, stdout, stderr). ``timeout`` is a hang guard."""
    env = {**{k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "o_bus.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cli_json_lines(stdout: str) -> list[Any]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def cli_result(*args: str, env: Mapping[str, str] | None = None) -> Any:
    """Run ``o-bus ARGS --json`` (see :func:`run_cli`); it must succeed. Its last JSON line."""
    code, out, err = await run_cli(*args, "--json", env=env)
    assert code == 0, err
    return cli_json_lines(out)[-1]
