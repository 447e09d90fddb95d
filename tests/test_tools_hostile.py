"""Hostile, malformed and oversized tool outputs end as clear recorded errors, never a crash."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from agents_for_tests.fetcher import make_fetcher
from pydantic import BaseModel
from pydantic_core import from_json
from tools_fakes import HttpFake, http_fake, tool_platform

from o_bus import AgentDefinition, Command
from o_bus.tools import ToolContext, ToolState, http_tool, tool
from o_bus.tools.executor import Execution, ToolExecutor
from o_bus.tools.records import MAX_ERROR_MESSAGE

NO_BUS = ToolContext(cast(Any, None), cast(Any, None), "unit")


async def _fetch(server: HttpFake, path: str, **request: Any) -> Execution:
    http = http_tool(allowed_urls=["http://127.0.0.1:"], max_response_bytes=100_000)
    return await ToolExecutor(NO_BUS).execute(http, {"url": server.url(path), **request})


@pytest.mark.parametrize(
    ("path", "request_extra", "code", "message"),
    [
        ("/big", {}, "output_too_large", "HTTP response body is larger than 100000 bytes"),
        ("/binary", {}, "tool_failed", "the response body is not UTF-8 text (byte 0 of 6)"),
        ("/badjson", {"parse_json": True}, "tool_failed", "the response body is not valid JSON"),
        ("/garbage", {}, "tool_failed", "malformed HTTP response: status line 'this is not HTTP'"),
    ],
)
async def test_bad_http_responses_are_clear_errors(
    path: str, request_extra: dict[str, Any], code: str, message: str
) -> None:
    async with http_fake() as server:
        result = await _fetch(server, path, **request_extra)
    assert result.error is not None
    assert result.error.code == code
    assert result.error.message.startswith(message)
    assert not result.error.retryable


async def test_chunked_json_responses_are_read() -> None:
    async with http_fake() as server:
        result = await _fetch(server, "/chunked", parse_json=True)
    assert result.output is not None
    assert result.output["data"] == {"a": 1}


async def test_unreachable_servers_and_forbidden_urls_are_errors() -> None:
    async with http_fake() as server:
        port = server.port
    closed = await _fetch(HttpFake(port=port), "/count/x")  # the server is gone
    assert closed.error is not None
    assert closed.error.message.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert closed.error.retryable
    outside = await ToolExecutor(NO_BUS).execute(
        http_tool(allowed_urls=["http://127.0.0.1:"]), {"url": "http://example.com/"}
    )
    assert outside.error is not None
    assert "is not allowed for tool 'http'" in outside.error.message


class Out(BaseModel):
    text: str


class In(BaseModel):
    kind: str


class Unserialisable:
    def __repr__(self) -> str:
        raise RuntimeError("hostile repr")


@tool("hostile", input=In, output=Out, max_output_bytes=1000)
async def hostile(request: In, ctx: ToolContext) -> Any:
    if request.kind == "wrong_shape":
        return {"text": 42, "extra": True}
    if request.kind == "object":
        return Unserialisable()
    if request.kind == "huge":
        return Out(text="y" * 5000)
    if request.kind == "loud":
        raise ValueError("z" * 100_000)
    if request.kind == "cancel_self":
        raise asyncio.IncompleteReadError(b"", 10)
    return Out(text="fine")


@pytest.mark.parametrize(
    ("kind", "code", "start"),
    [
        ("wrong_shape", "invalid_output", "tool 'hostile' returned text: Input should be"),
        ("object", "invalid_output", "tool 'hostile' returned (input): Input should be"),
        ("huge", "output_too_large", "tool 'hostile' returned 5011 bytes of JSON; the limit"),
        ("loud", "tool_failed", "ValueError: zzz"),
        ("cancel_self", "tool_failed", "IncompleteReadError"),
    ],
)
async def test_hostile_tool_outputs_become_clear_errors(kind: str, code: str, start: str) -> None:
    result = await ToolExecutor(NO_BUS).execute(hostile, {"kind": kind})
    assert result.error is not None
    assert result.error.code == code
    assert result.error.message.startswith(start)
    assert len(result.error.message) <= MAX_ERROR_MESSAGE


class BlobState(ToolState):
    sizes: list[int] = []


class Ask(Command):
    size: int


class Blobbed(BaseModel):
    data: str


class BlobRequest(BaseModel):
    size: int


@tool("blob", input=BlobRequest, output=Blobbed, max_output_bytes=10_000_000)
async def blob(request: BlobRequest, ctx: ToolContext) -> Blobbed:
    return Blobbed(data="b" * request.size)


def _blob_agent() -> AgentDefinition[BlobState]:
    agent: AgentDefinition[BlobState] = AgentDefinition("blobby", state=BlobState, version="1")
    tools = agent.use_tools(blob)

    @agent.command
    def ask(state: BlobState, cmd: Ask) -> Any:
        return tools.call(state, "blob", {"size": cmd.size})

    return agent


async def test_results_larger_than_a_request_may_be_are_recorded_as_errors(nats_url: str) -> None:
    async with tool_platform(nats_url, _blob_agent()) as platform:
        await platform.send("ask", {"size": 400_000})
        await platform.send("ask", {"size": 10})
        big, small = [from_json(e.data) for e in await platform.completed(2)]
        assert big["error"]["code"] == "output_too_large"
        assert "max_request_bytes" in big["error"]["message"]
        assert small["ok"]


async def test_the_agent_records_bad_responses_and_keeps_serving(nats_url: str) -> None:
    async with (
        http_fake() as server,
        tool_platform(nats_url, make_fetcher("hostile1")) as platform,
    ):
        urls = [server.url(p) for p in ("/big", "/binary", "/garbage", "/count/ok")]
        await platform.send("fetch_many", {"urls": urls})
        await platform.completed(4)
        state = await platform.state()
        assert state.failures == {
            "call-1": "output_too_large",
            "call-2": "tool_failed",
            "call-3": "tool_failed",
        }
        assert state.bodies == {"call-4": "hello 1"}
        assert (await platform.send("ping"))["ok"]
