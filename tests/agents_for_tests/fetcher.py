"""Test agent ``fetcher``: fetches URLs with the built-in HTTP tool and remembers the answers.

``fetch`` asks for one call, ``fetch_many`` for several, ``ping`` only counts (to show the
agent keeps serving while a tool call is in flight). The result handler records a success as
``fetched`` and a failure as ``fetch_failed``.

``make_fetcher(name, **policy)`` builds a variant whose HTTP tool has another policy (timeout,
retries, cache, rate limit); ``fetcher`` is the default one. Loaded by path in tests:
``tests/agents_for_tests/fetcher.py:fetcher``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from o_bus import AgentDefinition, Command, Event
from o_bus.tools import HttpResult, ToolResult, ToolState, http_tool

__all__ = ["FetcherState", "fetcher", "make_fetcher"]


class FetcherState(ToolState):
    bodies: dict[str, str] = {}  # call id -> response body
    failures: dict[str, str] = {}  # call id -> error code
    cached: list[str] = []  # call ids answered from the cache
    pings: int = 0


class Fetch(Command):
    url: str
    parse_json: bool = False


class FetchMany(Command):
    urls: list[str] = Field(min_length=1, max_length=50)


class Ping(Command):
    pass


class Fetched(Event):
    call_id: str
    status: int
    body: str
    cached: bool


class FetchFailed(Event):
    call_id: str
    code: str
    message: str


class Pinged(Event):
    pass


def make_fetcher(name: str = "fetcher", **policy: Any) -> AgentDefinition[FetcherState]:
    agent: AgentDefinition[FetcherState] = AgentDefinition(
        name, state=FetcherState, version="1.0.0", description="Fetches URLs with a tool."
    )
    tools = agent.use_tools(http_tool("http", allowed_urls=["http://127.0.0.1:"], **policy))

    @agent.command
    def fetch(state: FetcherState, cmd: Fetch) -> Event:
        return tools.call(state, "http", {"url": cmd.url, "parse_json": cmd.parse_json})

    @agent.command
    def fetch_many(state: FetcherState, cmd: FetchMany) -> list[Any]:
        return tools.calls(state, [("http", {"url": url}) for url in cmd.urls])

    @agent.command
    def ping(state: FetcherState, cmd: Ping) -> Pinged:
        return Pinged()

    @agent.on_tool_result("http")
    def fetched(state: FetcherState, result: ToolResult) -> Event:
        if result.ok:
            assert isinstance(result.output, HttpResult)
            return Fetched(
                call_id=result.call_id,
                status=result.output.status,
                body=result.output.body,
                cached=result.cached,
            )
        assert result.error is not None
        return FetchFailed(
            call_id=result.call_id, code=result.error.code, message=result.error.message
        )

    @agent.applies
    def apply_fetched(state: FetcherState, event: Fetched) -> FetcherState:
        cached = [*state.cached, event.call_id] if event.cached else state.cached
        return state.model_copy(
            update={"bodies": {**state.bodies, event.call_id: event.body}, "cached": cached}
        )

    @agent.applies
    def apply_failed(state: FetcherState, event: FetchFailed) -> FetcherState:
        return state.model_copy(update={"failures": {**state.failures, event.call_id: event.code}})

    @agent.applies
    def apply_pinged(state: FetcherState, event: Pinged) -> FetcherState:
        return state.model_copy(update={"pings": state.pings + 1})

    return agent


fetcher = make_fetcher()
