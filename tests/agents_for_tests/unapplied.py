"""Test agent ``unapplied``: a bug on purpose. Its ``note`` command returns an event that has no
applier, so every ``note`` is a bug in the agent, answered ``internal_error``. ``ping`` works.
Loaded by path in tests: ``tests/agents_for_tests/unapplied.py:unapplied``.
"""

from __future__ import annotations

from o_bus import AgentDefinition, Command, Event, State

__all__ = ["unapplied"]


class Pings(State):
    pings: int = 0


class Note(Command):
    text: str


class Ping(Command):
    pass


class Noted(Event):
    text: str


class Pinged(Event):
    pass


unapplied = AgentDefinition("unapplied", state=Pings, version="1.0.0")


@unapplied.command
def note(state: Pings, cmd: Note) -> Noted:
    return Noted(text=cmd.text)


@unapplied.command
def ping(state: Pings, cmd: Ping) -> Pinged:
    return Pinged()


@unapplied.applies
def _(state: Pings, event: Pinged) -> Pings:
    return state.model_copy(update={"pings": state.pings + 1})
