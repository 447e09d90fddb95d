"""Reference agent ``echo``: ``say`` some text and get it back as an event."""

from __future__ import annotations

from pydantic import Field

from o_bus.agent.definition import AgentDefinition
from o_bus.events.model import Command, Event, State

__all__ = ["EchoState", "Echoed", "Say", "echo"]


class EchoState(State):
    count: int = 0
    last: str | None = None


class Say(Command):
    text: str = Field(max_length=65536)


class Echoed(Event):
    text: str


echo: AgentDefinition[EchoState] = AgentDefinition(
    "echo", state=EchoState, version="1.0.0", description="Echoes text back."
)


@echo.command
def say(state: EchoState, cmd: Say) -> Echoed:
    return Echoed(text=cmd.text)


@echo.applies
def apply_echoed(state: EchoState, event: Echoed) -> EchoState:
    return state.model_copy(update={"count": state.count + 1, "last": event.text})
