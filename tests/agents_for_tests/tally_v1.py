"""Test agent ``tally`` as its first release wrote it: ``Added`` events at version 1, whose
data is ``{"amount": n}``. Its golden history (tests/data/histories/*/tally) is recorded with
this code; today's code (``tally.py`` beside it) reads those events through an upcaster.

Recorded with ``python -m o_bus.cli.record_histories --agent
tests/agents_for_tests/tally_v1.py``.
"""

from __future__ import annotations

from typing import Any

from o_bus import AgentDefinition, Command, CommandRejected, Event, State

__all__ = ["golden_traffic", "tally"]


class TallyState(State):
    total: int = 0
    count: int = 0


class Add(Command):
    amount: int


class Added(Event):
    amount: int


tally: AgentDefinition[TallyState] = AgentDefinition("tally", state=TallyState, version="1.0.0")


@tally.command
def add(state: TallyState, cmd: Add) -> Added:
    if cmd.amount == 0:
        raise CommandRejected("nothing to add")
    return Added(amount=cmd.amount)


@tally.applies
def apply_added(state: TallyState, event: Added) -> TallyState:
    return state.model_copy(update={"total": state.total + event.amount, "count": state.count + 1})


golden_traffic: list[tuple[str, dict[str, Any]]] = [
    ("add", {"amount": amount}) for amount in (3, 1, 4, 1, 0, 5, 9, 2, 6)
]
