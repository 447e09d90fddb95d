"""Example agent ``quota`` with a planted bug: its limit check is off by one.

It hands out units of a resource up to ``LIMIT``. The invariant says what must always hold
(``used <= LIMIT``); the handler's check lets one unit too many through, so a sequence that
reserves exactly up to the limit and then one more breaks it. ``o-bus evolve red quota`` finds
such a sequence; the fix is ``>`` against ``LIMIT`` instead of ``LIMIT + 1``.

Its fitness is the share of requests it serves: a quota that refuses too much is worse, and
a request that leaves the state breaking the invariant scores nothing. So a search of code
mutations on its recorded traffic (``agents/quota_traffic.jsonl``) with red's findings as
the regression set finds the fix::

    o-bus evolve search quota --source agents/quota.py \
        --dataset agents/quota_traffic.jsonl --operators ast --red 200 --seed 1
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import CommandRejected
from o_bus.events.model import Command, Event, State

__all__ = ["LIMIT", "QuotaState", "Release", "Reserve", "quota"]

LIMIT = 10


class QuotaState(State):
    used: int = 0


class Reserve(Command):
    amount: int = Field(ge=1, le=LIMIT, description="units to take")


class Release(Command):
    amount: int = Field(ge=1, le=LIMIT, description="units to give back")


class Reserved(Event):
    amount: int


class Released(Event):
    amount: int


quota: AgentDefinition[QuotaState] = AgentDefinition(
    "quota", state=QuotaState, version="1.0.0", description="Hands out at most LIMIT units."
)


@quota.command
def reserve(state: QuotaState, cmd: Reserve) -> Reserved:
    if state.used + cmd.amount > LIMIT + 1:  # planted bug: should be `> LIMIT`
        raise CommandRejected(f"only {LIMIT - state.used} unit(s) left")
    return Reserved(amount=cmd.amount)


@quota.command
def release(state: QuotaState, cmd: Release) -> Released:
    if cmd.amount > state.used:
        raise CommandRejected(f"only {state.used} unit(s) in use")
    return Released(amount=cmd.amount)


@quota.applies
def apply_reserved(state: QuotaState, event: Reserved) -> QuotaState:
    return state.model_copy(update={"used": state.used + event.amount})


@quota.applies
def apply_released(state: QuotaState, event: Released) -> QuotaState:
    return state.model_copy(update={"used": state.used - event.amount})


@quota.invariant
def within_limit(state: QuotaState) -> bool:
    return 0 <= state.used <= LIMIT


@quota.fitness
def served(state: QuotaState, cmd: Command, events: Sequence[Event]) -> float:
    return 1.0 if events else 0.0
