"""Reference agent ``counter``: ``increment`` by an integer, ``reset`` to zero."""

from __future__ import annotations

from pydantic import Field

from o_bus.agent.definition import AgentDefinition
from o_bus.events.model import Command, Event, State

__all__ = ["CounterState", "Increment", "Incremented", "Reset", "ResetDone", "counter"]


class CounterState(State):
    value: int = 0
    increments: int = 0


class Increment(Command):
    by: int = Field(default=1, ge=-(2**53), le=2**53, description="amount to add")


class Reset(Command):
    pass


class Incremented(Event):
    by: int


class ResetDone(Event):
    event_type = "reset"
    previous: int


counter: AgentDefinition[CounterState] = AgentDefinition(
    "counter", state=CounterState, version="1.0.0", description="Adds numbers; can be reset."
)


@counter.command
def increment(state: CounterState, cmd: Increment) -> Incremented:
    return Incremented(by=cmd.by)


@counter.command
def reset(state: CounterState, cmd: Reset) -> ResetDone:
    return ResetDone(previous=state.value)


@counter.applies
def apply_incremented(state: CounterState, event: Incremented) -> CounterState:
    return state.model_copy(
        update={"value": state.value + event.by, "increments": state.increments + 1}
    )


@counter.applies
def apply_reset(state: CounterState, event: ResetDone) -> CounterState:
    return state.model_copy(update={"value": 0})
