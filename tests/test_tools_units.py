"""Declaring tools and recording results, without a bus: the pure parts of the framework."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from o_bus import AgentDefinition, Command, CommandRejected, Event, State
from o_bus.errors import ConfigurationError, InvalidRequestError
from o_bus.tools import ToolContext, ToolResult, ToolState, tool
from o_bus.tools.records import ToolCallCompleted, ToolCallRequested, ToolResultCommand


class Word(BaseModel):
    word: str


class Length(BaseModel):
    length: int


@tool("measure", input=Word, output=Length)
async def measure(request: Word, ctx: ToolContext) -> Length:
    return Length(length=len(request.word))


class Lengths(ToolState):
    seen: list[int] = []


class Measure(Command):
    words: list[str]


class Measured(Event):
    length: int


def _agent(*, decline: bool = False) -> AgentDefinition[Lengths]:
    agent: AgentDefinition[Lengths] = AgentDefinition("lengths", state=Lengths, version="1")
    tools = agent.use_tools(measure)

    @agent.command
    def measure_words(state: Lengths, cmd: Measure) -> Any:
        if len(cmd.words) == 2 and cmd.words[0] == "twice":
            return [tools.call(state, "measure", {"word": w}) for w in cmd.words]
        return tools.calls(state, [("measure", {"word": w}) for w in cmd.words])

    @agent.on_tool_result("measure")
    def measured(state: Lengths, result: ToolResult) -> Event:
        if decline:
            raise CommandRejected("not interested")
        assert isinstance(result.output, Length)
        return Measured(length=result.output.length)

    @agent.applies
    def _(state: Lengths, event: Measured) -> Lengths:
        return state.model_copy(update={"seen": [*state.seen, event.length]})

    return agent


def _result(call_id: str, **fields: Any) -> ToolResultCommand:
    return ToolResultCommand(call_id=call_id, tool="measure", **{"ok": True, **fields})


def test_calls_get_ids_from_the_state_and_results_run_the_continuation() -> None:
    agent = _agent()
    asked = agent.decide(agent.initial_state(), Measure(words=["ab", "abc"]))
    assert [(e.call_id, e.input) for e in asked.events if isinstance(e, ToolCallRequested)] == [
        ("call-1", {"word": "ab"}),
        ("call-2", {"word": "abc"}),
    ]
    assert list(asked.state.tool_calls) == ["call-1", "call-2"]
    done = agent.decide(asked.state, _result("call-2", output={"length": 3}, attempts=2))
    completed, measured = done.events
    assert isinstance(completed, ToolCallCompleted)
    assert completed.attempts == 2
    assert measured == Measured(length=3)
    assert list(done.state.tool_calls) == ["call-1"]
    assert done.state.seen == [3]
    # the next call continues the sequence
    again = agent.decide(done.state, Measure(words=["x"]))
    assert again.events[0].call_id == "call-3"  # type: ignore[attr-defined]


def test_results_that_do_not_fit_are_refused() -> None:
    agent = _agent()
    state = agent.decide(agent.initial_state(), Measure(words=["ab"])).state
    with pytest.raises(InvalidRequestError, match="output of tool 'measure' does not fit"):
        agent.decide(state, _result("call-1", output={"length": "long"}))
    with pytest.raises(CommandRejected, match="is a call of 'measure'"):
        agent.decide(state, ToolResultCommand(call_id="call-1", tool="other", ok=True))
    with pytest.raises(CommandRejected, match="not pending"):
        agent.decide(state, _result("call-9", output={"length": 1}))


def test_a_declining_continuation_still_records_the_result() -> None:
    agent = _agent(decline=True)
    state = agent.decide(agent.initial_state(), Measure(words=["ab"])).state
    done = agent.decide(state, _result("call-1", output={"length": 2}))
    assert [type(e) for e in done.events] == [ToolCallCompleted]
    assert done.state.tool_calls == {}


def test_two_single_calls_in_one_handler_are_refused_with_advice() -> None:
    agent = _agent()
    with pytest.raises(CommandRejected, match=r"tools\.calls"):
        agent.decide(agent.initial_state(), Measure(words=["twice", "again"]))


def test_declarations_are_checked() -> None:
    class Plain(State):
        pass

    plain: AgentDefinition[Plain] = AgentDefinition("plain", state=Plain, version="1")
    with pytest.raises(ConfigurationError, match=r"must subclass o_bus\.tools\.ToolState"):
        plain.use_tools(measure)
    with pytest.raises(ConfigurationError, match="declare use_tools"):
        plain.on_tool_result("measure")
    agent: AgentDefinition[Lengths] = AgentDefinition("twice", state=Lengths, version="1")
    with pytest.raises(ConfigurationError, match="declared twice"):
        agent.use_tools(measure, measure)
    other: AgentDefinition[Lengths] = AgentDefinition("other", state=Lengths, version="1")
    tools = other.use_tools(measure)
    with pytest.raises(ConfigurationError, match="declares no tool 'nope'; declared: measure"):
        tools.on_result("nope")
    with pytest.raises(ConfigurationError, match="declared its tools twice"):
        other.use_tools(measure)
