"""Test agent ``tally`` as today's code: ``Added`` is at version 2 (``{"by": n}``), and an
upcaster migrates the version-1 events its first release recorded (``tally_v1.py``).

The golden-history test folds the recorded version-1 history with this code, so the upcaster
is tested on bytes an earlier release wrote.
"""

from __future__ import annotations

from typing import Any

from o_bus import AgentDefinition, Command, CommandRejected, Event, State

__all__ = ["tally"]


class TallyState(State):
    total: int = 0
    count: int = 0


class Add(Command):
    by: int


class Added(Event):
    event_version = 2
    by: int


tally: AgentDefinition[TallyState] = AgentDefinition("tally", state=TallyState, version="2.0.0")


@tally.command
def add(state: TallyState, cmd: Add) -> Added:
    if cmd.by == 0:
        raise CommandRejected("nothing to add")
    return Added(by=cmd.by)


@tally.applies
def apply_added(state: TallyState, event: Added) -> TallyState:
    return state.model_copy(update={"total": state.total + event.by, "count": state.count + 1})


@tally.upcaster("added", from_version=1)
def added_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {"by": data["amount"]}
