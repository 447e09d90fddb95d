"""Tool calls under event sourcing: a result is recorded once, replay and shadows reuse it,
invalid input is refused at once, and calls interrupted by a crash are resumed."""

from __future__ import annotations

from typing import Any

from agents_for_tests.fetcher import make_fetcher
from pydantic_core import from_json
from support import eventually, read_subject
from tools_fakes import http_fake, tool_platform

from o_bus.agent.definition import AgentDefinition
from o_bus.config import RuntimeConfig
from o_bus.errors import OBusError
from o_bus.replay.rebuild import rebuild
from o_bus.store import layout
from o_bus.tools.records import result_request_id
from o_bus.wire.codec import encoding_for


async def _shadow_rerun(js: Any, definition: AgentDefinition[Any], agent: str) -> Any:
    """What a shadow does: run the handlers over the agent's WAL traffic, with no runner."""
    state = definition.initial_state()
    for msg in await read_subject(js, layout.WAL_STREAM, layout.wal_subject(agent)):
        headers = msg.headers or {}
        try:
            command = definition.parse_command(
                headers.get("ce-type", ""),
                msg.data or b"",
                encoding_for(headers.get("Content-Type")),
            )
            state = definition.decide(state, command).state
        except OBusError:
            continue  # refused requests change nothing, for the shadow as for live
    return state


async def test_a_result_is_recorded_once_and_replay_does_not_call_the_tool(nats_url: str) -> None:
    definition = make_fetcher("fetch1")
    async with http_fake() as server, tool_platform(nats_url, definition) as platform:
        reply = await platform.send("fetch", {"url": server.url("/count/a")})
        assert reply["ok"], reply
        assert [e["type"] for e in reply["events"]] == ["tool_call_requested"]
        call_id = reply["events"][0]["data"]["call_id"]

        [completed] = await platform.completed()
        data = from_json(completed.data)
        assert data["call_id"] == call_id
        assert data["ok"]
        assert data["attempts"] == 1
        assert data["output"]["body"] == "hello 1"
        types = [e.type for e in await platform.events()]
        assert types == ["tool_call_requested", "tool_call_completed", "fetched"]
        assert server.count("/count/a") == 1
        live = await platform.state()
        assert live.bodies == {call_id: "hello 1"}
        assert live.tool_calls == {}

        # The runner sends the result again (say it restarted before it saw the reply):
        # the same ce-id is recognised; another id for the same call is refused.
        body = {"call_id": call_id, "tool": "http", "ok": True, "output": data["output"]}
        again = await platform.send("tool_result", body, request_id=result_request_id(call_id))
        assert again["ok"]
        assert again["duplicate"]
        forged = await platform.send("tool_result", body, request_id="another-id")
        assert forged["error"]["code"] == "command_rejected"
        assert "not pending" in forged["error"]["message"]

        # Replay from the log and a full restart (recovery replays) never call the tool.
        rebuilt = await rebuild(definition, platform.log(), None)
        assert rebuilt.state == live
        await platform.stop_agent()
        await platform.start_agent()
        assert await platform.state() == live
        ping = await platform.send("ping")
        assert ping["ok"]
        assert server.count("/count/a") == 1
        assert len(await platform.events("tool_call_completed")) == 1

        # A shadow re-running the handlers on the WAL sees the recorded result and reuses it.
        shadow = await _shadow_rerun(platform.js, definition, platform.name)
        assert shadow.bodies == live.bodies
        assert shadow.tool_calls == {}
        assert server.count("/count/a") == 1


async def test_invalid_tool_input_is_refused_with_a_clear_error(nats_url: str) -> None:
    async with tool_platform(nats_url, make_fetcher("fetch2")) as platform:
        reply = await platform.send("fetch", {"url": "ftp://example"})
        assert not reply["ok"]
        error = reply["error"]
        assert error["code"] == "invalid_payload"
        assert error["message"].startswith("invalid input for tool 'http': url:")
        assert error["details"]["tool"] == "http"
        assert error["details"]["errors"][0]["loc"] == ["url"]
        many = await platform.send("fetch_many", {"urls": ["http://127.0.0.1:1/ok", "nope"]})
        assert many["error"]["code"] == "invalid_payload"
        assert await platform.events() == []  # nothing requested, nothing recorded
        assert (await platform.state()).tool_calls == {}


async def test_a_call_interrupted_by_a_crash_is_resumed_and_recorded_once(nats_url: str) -> None:
    async with http_fake() as server, tool_platform(nats_url, make_fetcher("fetch3")) as platform:
        reply = await platform.send("fetch", {"url": server.url("/slow")})
        call_id = reply["events"][0]["data"]["call_id"]

        async def in_flight() -> bool:
            return server.count("/slow") == 1

        await eventually(in_flight, what="the slow call to reach the server")
        await platform.stop_agent()  # the runner dies with the call in flight
        assert await platform.events("tool_call_completed") == []
        server.release()
        await platform.start_agent()  # the state says the call is pending: resumed
        [completed] = await platform.completed()
        assert from_json(completed.data)["call_id"] == call_id
        assert (await platform.state()).bodies == {call_id: "finally"}
        assert server.count("/slow") == 2  # the interrupted attempt, then the resumed one


async def test_processes_that_must_not_run_tools_leave_calls_pending(nats_url: str) -> None:
    """Shadow and candidate processes start with run_tools off: calls stay pending until a
    process that runs tools serves the agent."""
    quiet = RuntimeConfig(run_tools=False)
    definition = make_fetcher("fetch4")
    async with (
        http_fake() as server,
        tool_platform(nats_url, definition, config=quiet) as platform,
    ):
        assert platform.runner is None
        reply = await platform.send("fetch", {"url": server.url("/count/q")})
        assert reply["ok"]
        assert (await platform.send("ping"))["ok"]
        assert server.count("/count/q") == 0
        assert list((await platform.state()).tool_calls) == ["call-1"]
        await platform.stop_agent()
        await platform.start_agent(RuntimeConfig())
        await platform.completed()
        assert server.count("/count/q") == 1
        assert (await platform.state()).bodies == {"call-1": "hello 1"}
