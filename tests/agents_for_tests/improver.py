"""Test agent ``improver``: ``answer`` with a quality 0-10, ``fail`` raises (an error, not a
rejection). Fitness is the quality scaled to [0, 1], blended with the request's feedback.
It asks to be improved on any negative feedback; tests give it other triggers
(``improver.triggers``) to see when it does."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from o_bus import AgentDefinition, Command, Event, State
from o_bus.evolution.feedback.model import Feedback
from o_bus.evolution.triggers import OnFeedback, SearchBudget

__all__ = ["improver"]


class ImproverState(State):
    answered: int = 0


class Answer(Command):
    quality: int = Field(ge=0, le=10)


class Fail(Command):
    pass


class Answered(Event):
    quality: int


improver: AgentDefinition[ImproverState] = AgentDefinition(
    "improver",
    state=ImproverState,
    version="1",
    triggers=[OnFeedback(below=0.0, count=1)],
    search_budget=SearchBudget(max_evaluations=3, cpu_seconds=10, wall_seconds=60),
)


@improver.command
def answer(state: ImproverState, cmd: Answer) -> Answered:
    return Answered(quality=cmd.quality)


@improver.command
def fail(state: ImproverState, cmd: Fail) -> Answered:
    raise RuntimeError("this handler has a bug")


@improver.applies
def apply_answered(state: ImproverState, event: Answered) -> ImproverState:
    return state.model_copy(update={"answered": state.answered + 1})


@improver.fitness
def fitness(
    state: ImproverState,
    cmd: Command,
    events: Sequence[Event],
    feedback: Feedback | None = None,
) -> float:
    quality = sum(e.quality for e in events if isinstance(e, Answered)) / 10
    return quality if feedback is None else (quality + (feedback.score + 1) / 2) / 2
