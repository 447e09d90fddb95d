"""Test agent ``stuck``: ``spin`` with ``forever`` loops forever, ``boom`` raises, and
``crawl`` takes a while (a few milliseconds of work)."""

from __future__ import annotations

from o_bus import AgentDefinition, Command, Event, State

__all__ = ["stuck"]


class StuckState(State):
    spins: int = 0


class Spin(Command):
    forever: bool = False


class Boom(Command):
    pass


class Crawl(Command):
    pass


class Spun(Event):
    pass


stuck: AgentDefinition[StuckState] = AgentDefinition("stuck", state=StuckState, version="1")


@stuck.command
def spin(state: StuckState, cmd: Spin) -> Spun:
    while cmd.forever:
        pass
    return Spun()


@stuck.command
def boom(state: StuckState, cmd: Boom) -> Spun:
    raise ZeroDivisionError("boom")


@stuck.command
def crawl(state: StuckState, cmd: Crawl) -> Spun:
    total = sum(i * i for i in range(200_000))
    assert total > 0
    return Spun()


@stuck.applies
def apply_spun(state: StuckState, event: Spun) -> StuckState:
    return state.model_copy(update={"spins": state.spins + 1})
