"""Fitness that reads feedback: ``(state, command, events, feedback: Feedback | None = None)``.

An agent's ``@fitness`` function may declare a parameter annotated with :class:`Feedback`;
evaluation passes the latest feedback recorded for the request being scored (or ``None``).
Without such a parameter the function is called as before, with three arguments.

Example::

    @agent.fitness
    def fitness(state, cmd, events, feedback: Feedback | None = None) -> float:
        base = 1.0 if events else 0.0
        return base if feedback is None else (base + feedback.score) / 2
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from o_bus.agent.context import DecisionContext, context_parameter
from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError
from o_bus.events.model import Command, Event, State
from o_bus.evolution.feedback.model import Feedback

__all__ = ["feedback_parameter", "score"]


def _mentions_feedback(annotation: Any) -> bool:
    if annotation is Feedback:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(arg is Feedback for arg in typing.get_args(annotation))
    return False


def feedback_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of ``fn``'s parameter annotated with ``Feedback`` (or ``Feedback | None``)."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        return None
    for name in inspect.signature(fn).parameters:
        if _mentions_feedback(hints.get(name)):
            return name
    return None


def score(
    definition: AgentDefinition[Any],
    state: State,
    command: Command,
    events: Sequence[Event],
    feedback: Feedback | None = None,
    context: DecisionContext | None = None,
) -> float | None:
    """The agent's fitness of one outcome, given the request's feedback (and decision context,
    if the function declares one); ``None`` when the agent declares no fitness function."""
    fn = definition.fitness_function
    if fn is None:
        return None
    extra: dict[str, Any] = {}
    name = feedback_parameter(fn)
    if name is not None:
        extra[name] = feedback
    context_name = context_parameter(fn)
    if context_name is not None:
        if context is None:
            raise ConfigurationError(f"{fn.__qualname__} needs a decision context; none was given")
        extra[context_name] = context
    return float(fn(state, command, events, **extra))
