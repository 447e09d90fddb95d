"""Where the tool runner runs: beside the active worker in the agent host and in an agent
process (as the supervisor starts it), and never in a shadow, which reuses recorded results."""

from __future__ import annotations

import asyncio
from typing import Any

from agents_for_tests.fetcher import make_fetcher
from pydantic import BaseModel
from support import collect_events, eventually
from tools_fakes import http_fake, tool_platform

from o_bus import AgentDefinition, Command
from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.config import RuntimeConfig
from o_bus.evolution.candidate.shadow import ShadowRunner
from o_bus.replay.fork import fork
from o_bus.runtime.agent_process import EXIT_OK, AgentProcess
from o_bus.runtime.host import AgentHost
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.tools import ToolContext, ToolState, tool


async def test_a_shadow_reuses_recorded_results_and_never_calls_the_tool(nats_url: str) -> None:
    live = make_fetcher("shadowed")
    candidate = make_fetcher("shadowed")  # the same code under another version
    async with http_fake() as server, tool_platform(nats_url, live) as platform:
        shadow = ShadowRunner(
            platform.nc, platform.js, live.name, "sha256:" + "ab" * 32, live, candidate
        )
        await shadow.fork()
        await shadow.start()
        try:
            await platform.send("fetch", {"url": server.url("/count/s")})
            await platform.completed()
            assert (await platform.send("ping"))["ok"]

            async def compared() -> bool:
                return shadow.counters.compared >= 3  # fetch, its result, ping

            await eventually(compared, what="the shadow to compare three requests")
        finally:
            await shadow.stop()
        assert shadow.counters.differing == 0
        assert shadow.counters.candidate_failures == 0
        assert shadow.candidate_state == await platform.state()
        assert server.count("/count/s") == 1  # only live's runner called it


async def test_the_agent_host_runs_the_tools_of_its_agents(nats_url: str) -> None:
    definition = make_fetcher("hosted")
    async with (
        http_fake() as server,
        tool_platform(nats_url, definition, config=RuntimeConfig(run_tools=False)) as platform,
    ):
        await platform.stop_agent()  # the host below serves the agent instead
        async with connect(nats_url, "test-host") as (nc, js):
            host = AgentHost(nc, js, Catalogue([definition]), RuntimeConfig())
            await host.start()
            try:
                await platform.send("fetch", {"url": server.url("/count/h")})
                await platform.completed()
            finally:
                await host.stop()
        assert server.count("/count/h") == 1


async def test_an_agent_process_runs_the_tools_once_active(nats_url: str) -> None:
    definition = make_fetcher("processed")
    async with (
        http_fake() as server,
        tool_platform(nats_url, definition, config=RuntimeConfig(run_tools=False)) as platform,
    ):
        await platform.send("fetch", {"url": server.url("/count/p")})  # pending, not run
        await platform.stop_agent()
        async with connect(nats_url, "test-process") as (nc, js):
            process = AgentProcess(nc, js, definition.name, definition, RuntimeConfig())
            stop = asyncio.Event()
            running = asyncio.create_task(process.run(stop))
            try:
                await platform.completed()  # resumed by the runner of the active process
            finally:
                stop.set()
                assert await running == EXIT_OK
        assert server.count("/count/p") == 1


class Note(BaseModel):
    text: str


class NoterState(ToolState):
    pass


class Jot(Command):
    text: str


async def test_a_tool_knows_its_agent_and_call_id(nats_url: str) -> None:
    seen: list[tuple[str, str, str]] = []

    @tool("note", input=Note, output=Note)
    async def note(request: Note, ctx: ToolContext) -> Note:
        seen.append((ctx.agent, ctx.call_id, request.text))
        return request

    agent: AgentDefinition[NoterState] = AgentDefinition("noter", state=NoterState, version="1")
    tools = agent.use_tools(note)

    @agent.command
    def jot(state: NoterState, cmd: Jot) -> Any:
        return tools.call(state, "note", {"text": cmd.text})

    async with tool_platform(nats_url, agent) as platform:
        await platform.send("jot", {"text": "first"})
        await platform.send("jot", {"text": "second"})
        await platform.completed(2)
    assert sorted(seen) == [("noter", "call-1", "first"), ("noter", "call-2", "second")]


async def test_a_fork_runs_the_calls_pending_at_its_fork_point(nats_url: str) -> None:
    definition = make_fetcher("forked")
    quiet = RuntimeConfig(run_tools=False)
    async with (
        http_fake() as server,
        tool_platform(nats_url, definition, config=quiet) as platform,
    ):
        await platform.send("fetch", {"url": server.url("/count/f")})  # pending in the original
        await fork(platform.nc, platform.js, "forked", 1, "forked-copy")
        async with connect(nats_url, "test-host") as (nc, js):
            host = AgentHost(nc, js, Catalogue([definition]), RuntimeConfig(), only={"forked-copy"})
            await host.start()
            try:
                copy = JetStreamEventLog(platform.nc, platform.js, "forked-copy")

                async def completed() -> bool:
                    events = await collect_events(copy)
                    return any(e.type == "tool_call_completed" for e in events)

                await eventually(completed, what="the fork to complete its pending call")
            finally:
                await host.stop()
        assert server.count("/count/f") == 1
        assert list((await platform.state()).tool_calls) == ["call-1"]  # still pending here
