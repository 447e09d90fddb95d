"""Test doubles for the tool tests: a local HTTP server that counts what it serves, and a
platform (splitter + one agent worker + its tool runner) that a test can stop and restart.

The server speaks just enough HTTP/1.1 on 127.0.0.1 (port 0) and runs in the test's event
loop. Paths: ``/count/<anything>`` answers ``hello <n>``; ``/slow`` holds the request until
``release()``; ``/flaky`` answers 503 ``flaky_failures`` times, then 200; ``/big`` sends
``big_size`` bytes; ``/binary`` non-UTF-8 bytes; ``/badjson`` invalid JSON; ``/garbage`` no
HTTP at all; ``/chunked`` a chunked body; ``/v1/chat/completions`` an OpenAI-compatible fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from support import collect_events, eventually

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.client import send
from o_bus.common.connect import connect
from o_bus.config import RuntimeConfig, StorageConfig
from o_bus.handlers.splitter.service import Splitter
from o_bus.runtime.registration import register_definitions
from o_bus.runtime.tool_runner import ToolRunner, start_tool_runner
from o_bus.runtime.worker import AgentWorker
from o_bus.store.event_log import EventLog, StoredEvent
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.tools.executor import ToolExecutor
from o_bus.tools.spec import ToolContext

__all__ = ["FakeClock", "HttpFake", "ToolPlatform", "http_fake", "tool_platform"]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class HttpFake:
    port: int = 0
    hits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    flaky_failures: int = 2
    big_size: int = 200_000
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    chat_key: str = "test-key"
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return len(self.hits[path])

    def release(self) -> None:
        self._release.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode().strip()
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = request_line.split(" ")[1]
            self.hits[path].append(time.monotonic())
            writer.write(await self._answer(path, headers, body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (a timeout): nothing to answer
        finally:
            writer.close()

    async def _answer(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        if path.startswith("/count"):
            return _response(200, f"hello {self.count(path)}".encode(), "text/plain")
        if path == "/slow":
            await self._release.wait()
            return _response(200, b"finally", "text/plain")
        if path == "/flaky":
            if self.count(path) <= self.flaky_failures:
                return _response(503, b"try later", "text/plain")
            return _response(200, b"recovered", "text/plain")
        if path == "/big":
            return _response(200, b"x" * self.big_size, "text/plain")
        if path == "/binary":
            return _response(200, b"\xff\xfe\x00bad", "application/octet-stream")
        if path == "/badjson":
            return _response(200, b'{"unterminated": ', "application/json")
        if path == "/garbage":
            return b"this is not HTTP\r\n\r\n"
        if path == "/chunked":
            return (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/json\r\n\r\n"
                b'7\r\n{"a": 1\r\n1\r\n}\r\n0\r\n\r\n'
            )
        if path == "/v1/chat/completions":
            return self._chat(headers, body)
        return _response(404, b"no such path", "text/plain")

    def _chat(self, headers: dict[str, str], body: bytes) -> bytes:
        if headers.get("authorization") != f"Bearer {self.chat_key}":
            return _response(401, b'{"error": {"message": "bad key"}}', "application/json")
        request = json.loads(body)
        self.chat_requests.append(request)
        last = request["messages"][-1]["content"]
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {last}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return _response(200, json.dumps(answer).encode(), "application/json")


def _response(status: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextlib.asynccontextmanager
async def http_fake() -> AsyncIterator[HttpFake]:
    fake = HttpFake()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        fake.release()
        server.close()
        await server.wait_closed()


@dataclass
class ToolPlatform:
    """A splitter, one agent worker with its tool runner, and a client connection."""

    url: str
    nc: Client
    js: JetStreamContext
    definition: AgentDefinition[Any]
    config: RuntimeConfig
    clock: Callable[[], float]
    worker: AgentWorker | None = None
    runner: ToolRunner | None = None
    _conn: Any = None

    @property
    def name(self) -> str:
        return self.definition.name

    async def send(self, command: str, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        return await send(self.nc, self.name, command, data, **kwargs)

    def log(self) -> EventLog:
        return JetStreamEventLog(self.nc, self.js, self.name)

    async def events(self, event_type: str | None = None) -> list[StoredEvent]:
        found = await collect_events(self.log())
        return [e for e in found if event_type is None or e.type == event_type]

    async def start_agent(self, config: RuntimeConfig | None = None) -> None:
        assert self.worker is None
        config = config or self.config
        self._conn = connect(self.url, "test-tool-agent")
        nc, js = await self._conn.__aenter__()
        self.worker = AgentWorker(nc, js, self.name, self.definition, config)
        await self.worker.start()
        executor = ToolExecutor(ToolContext(nc, js, self.name), clock=self.clock)
        self.runner = await start_tool_runner(self.worker, config, executor=executor)

    async def stop_agent(self) -> None:
        """Stop the runner (abandoning calls in flight, as a crash would) and the worker."""
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.__aexit__(None, None, None)

    async def state(self) -> Any:
        assert self.worker is not None
        return self.worker.committed_state

    async def completed(self, count: int = 1) -> list[StoredEvent]:
        """Wait until ``count`` tool results are recorded; return them."""

        async def probe() -> list[StoredEvent] | None:
            found = await self.events("tool_call_completed")
            return found if len(found) >= count else None

        found: list[StoredEvent] = await eventually(probe, what=f"{count} recorded tool results")
        return found


@contextlib.asynccontextmanager
async def tool_platform(
    url: str,
    definition: AgentDefinition[Any],
    *,
    config: RuntimeConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[ToolPlatform]:
    config = config or RuntimeConfig()
    async with contextlib.AsyncExitStack() as stack:
        nc, js = await stack.enter_async_context(connect(url, "test-client"))
        await provision(js, StorageConfig(storage="file"))
        await register_definitions(js, Catalogue([definition]))
        snc, sjs = await stack.enter_async_context(connect(url, "test-splitter"))
        splitter = Splitter(snc, sjs, config)
        await splitter.start()
        stack.push_async_callback(splitter.stop)

        async def routed() -> bool:
            return definition.name in splitter.routes.commands

        await eventually(routed, what=f"the splitter to route {definition.name!r}")
        platform = ToolPlatform(url, nc, js, definition, config, clock)
        stack.push_async_callback(platform.stop_agent)
        await platform.start_agent()
        yield platform
