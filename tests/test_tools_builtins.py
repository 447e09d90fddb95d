"""The built-in tools: key-value on a JetStream bucket, the optional language model against a
local OpenAI-compatible server, and memory search over a memory agent's query path."""

from __future__ import annotations

from typing import Any, cast

import pytest
from nats.aio.client import Client
from pydantic_core import from_json
from support import running_platform
from tools_fakes import http_fake, tool_platform

from o_bus import AgentDefinition, Command, Event
from o_bus.client import query
from o_bus.config import StorageConfig
from o_bus.errors import InvalidRequestError
from o_bus.memory.search_tool import memory_search_tool
from o_bus.store.provision import provision
from o_bus.tools import ToolContext, ToolResult, ToolState
from o_bus.tools.executor import Execution, ToolExecutor
from o_bus.tools.kv_tool import kv_tool
from o_bus.tools.llm_tool import BASE_URL_ENV, KEY_ENV, MODEL_ENV, OpenAICompatibleChat, llm_tool


def _ok(result: Execution) -> dict[str, Any]:
    assert result.error is None, result.error
    assert result.output is not None
    return result.output


async def test_the_kv_tool_gets_puts_and_deletes_per_agent(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js, StorageConfig(storage="memory"))
    kv = kv_tool()
    alice = ToolExecutor(ToolContext(nc, js, "alice"))
    bob = ToolExecutor(ToolContext(nc, js, "bob"))

    put = _ok(await alice.execute(kv, {"op": "put", "key": "city", "value": "Lyon"}))
    assert put["found"]
    got = _ok(await alice.execute(kv, {"op": "get", "key": "city"}))
    assert got["value"] == "Lyon"
    assert got["revision"] == put["revision"]
    assert not _ok(await bob.execute(kv, {"op": "get", "key": "city"}))["found"]

    stale = {"op": "put", "key": "city", "value": "Nice", "expected_revision": 999}
    refused = await alice.execute(kv, stale)
    assert refused.error is not None
    assert refused.error.message == "key 'city' is not at revision 999"
    fresh = {**stale, "expected_revision": got["revision"]}
    assert _ok(await alice.execute(kv, fresh))["value"] == "Nice"
    exists = await alice.execute(kv, {**stale, "expected_revision": 0})
    assert exists.error is not None

    _ok(await alice.execute(kv, {"op": "delete", "key": "city"}))
    assert not _ok(await alice.execute(kv, {"op": "get", "key": "city"}))["found"]

    shared = kv_tool("shared_kv", scope="shared")
    _ok(await alice.execute(shared, {"op": "put", "key": "notice", "value": "hi"}))
    assert _ok(await bob.execute(shared, {"op": "get", "key": "notice"}))["value"] == "hi"


class KvState(ToolState):
    pass


class Save(Command):
    key: str
    value: str | None = None


def test_invalid_kv_input_is_refused_when_the_call_is_asked_for() -> None:
    agent: AgentDefinition[KvState] = AgentDefinition("kvuser", state=KvState, version="1")
    tools = agent.use_tools(kv_tool())
    with pytest.raises(InvalidRequestError, match="invalid input for tool 'kv'") as caught:
        tools.call(KvState(), "kv", {"op": "put", "key": "bad key!", "value": "x"})
    assert [e["loc"] for e in caught.value.details["errors"]] == [["key"]]
    with pytest.raises(InvalidRequestError, match="give a value with put"):
        tools.call(KvState(), "kv", {"op": "put", "key": "fine"})


async def test_the_llm_tool_speaks_the_openai_compatible_protocol() -> None:
    async with http_fake() as server:
        chat = OpenAICompatibleChat(server.url("/v1"), api_key="test-key", model="tiny")
        executor = ToolExecutor(ToolContext(cast(Any, None), cast(Any, None), "unit"))
        request = {"messages": [{"role": "user", "content": "hello"}], "temperature": 0.0}
        reply = _ok(await executor.execute(llm_tool(model=chat), request))
        assert reply == {
            "content": "echo: hello",
            "model": "tiny",
            "finish_reason": "stop",
            "prompt_tokens": 3,
            "completion_tokens": 2,
        }
        assert server.chat_requests == [
            {
                "model": "tiny",
                "messages": [{"role": "user", "content": "hello"}],
                "temperature": 0.0,
            }
        ]
        wrong_key = OpenAICompatibleChat(server.url("/v1"), api_key="nope", model="tiny")
        refused = await executor.execute(llm_tool(model=wrong_key), request)
        assert refused.error is not None
        assert refused.error.message == "the language model refused the API key (401)"
        not_chat = OpenAICompatibleChat(server.url("/count"), api_key="test-key", model="tiny")
        garbled = await executor.execute(llm_tool(model=not_chat), request)
        assert garbled.error is not None
        assert garbled.error.message.startswith("the language model's answer is not a chat")
        elsewhere = OpenAICompatibleChat(server.url("/none"), api_key="test-key", model="tiny")
        missing = await executor.execute(llm_tool(model=elsewhere), request)
        assert missing.error is not None
        assert missing.error.message == "the language model answered 404: no such path"


class AskerState(ToolState):
    answers: list[str] = []
    errors: list[str] = []


class Ask(Command):
    question: str


class Answered(Event):
    text: str


class NotAnswered(Event):
    code: str


def _asker() -> AgentDefinition[AskerState]:
    agent: AgentDefinition[AskerState] = AgentDefinition("asker", state=AskerState, version="1")
    tools = agent.use_tools(llm_tool(timeout=5.0))

    @agent.command
    def ask(state: AskerState, cmd: Ask) -> Any:
        return tools.call(state, "llm", {"messages": [{"role": "user", "content": cmd.question}]})

    @agent.on_tool_result("llm")
    def answered(state: AskerState, result: ToolResult) -> Event:
        if result.ok:
            return Answered(text=result.output.content)
        assert result.error is not None
        return NotAnswered(code=result.error.code)

    @agent.applies
    def _a(state: AskerState, event: Answered) -> AskerState:
        return state.model_copy(update={"answers": [*state.answers, event.text]})

    @agent.applies
    def _n(state: AskerState, event: NotAnswered) -> AskerState:
        return state.model_copy(update={"errors": [*state.errors, event.code]})

    return agent


async def test_the_llm_tool_is_off_until_configured_then_answers_an_agent(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (BASE_URL_ENV, KEY_ENV, MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    async with http_fake() as server, tool_platform(nats_url, _asker()) as platform:
        await platform.send("ask", {"question": "anyone?"})
        [off] = await platform.completed(1)
        error = from_json(off.data)["error"]
        assert error["code"] == "not_configured"
        assert BASE_URL_ENV in error["message"]

        monkeypatch.setenv(BASE_URL_ENV, server.url("/v1"))
        monkeypatch.setenv(KEY_ENV, "test-key")
        monkeypatch.setenv(MODEL_ENV, "tiny")
        await platform.send("ask", {"question": "the answer?"})
        await platform.completed(2)
        state = await platform.state()
        assert state.errors == ["not_configured"]
        assert state.answers == ["echo: the answer?"]


async def test_memory_search_asks_the_memory_agent(nats_url: str) -> None:
    items = [
        "the spare house keys hang on the hook by the back door",
        "the quarterly tax return is due at the end of april",
        "the cat is fed twice a day, dry food in the morning",
    ]
    async with running_platform(nats_url, agents=("counter", "echo", "memory")) as platform:
        seq = 0
        for text in items:
            reply = await platform.send("memory", "remember", {"text": text})
            assert reply["ok"], reply
            seq = reply["seq"]
        # wait until the memory agent's index holds every item
        assert (await query(platform.nc, "memory", "stats", min_seq=seq, timeout=20.0))["ok"]
        executor = ToolExecutor(ToolContext(platform.nc, platform.js, "assistant"))
        found = _ok(
            await executor.execute(memory_search_tool(), {"text": "where are my keys", "k": 2})
        )
        assert len(found["hits"]) == 2
        assert found["hits"][0]["text"] == items[0]
        blank = await executor.execute(memory_search_tool(), {"text": "", "k": 2})
        assert blank.error is not None
        assert blank.error.code == "invalid_input"
        nobody = await executor.execute(memory_search_tool(memory_agent="nobody"), {"text": "x"})
        assert nobody.error is not None
        assert nobody.error.retryable
        assert "'nobody'" in nobody.error.message
