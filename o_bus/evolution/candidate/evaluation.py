"""Running one request through a definition, and the comparable form of an outcome.

An *output* is what a client could observe: ``{"ok", "error", "events"}`` with each event as
``{"type", "version", "data"}``. Live's recorded outcome, a second evaluation of the live
code and the candidate's evaluation all take this form, so they can be compared field by field.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.decision.decider import command_of, decide_command
from o_bus.errors import CommandRejected, ErrorCode, InvalidRequestError
from o_bus.events.model import Command, Event, State
from o_bus.wire.wal_record import WalRecord

__all__ = ["Evaluation", "Output", "evaluate", "output_of_events", "rejected_output"]

Output = dict[str, Any]


def output_of_events(events: list[dict[str, Any]]) -> Output:
    return {"ok": True, "error": None, "events": events}


def rejected_output(code: str) -> Output:
    return {"ok": False, "error": code, "events": []}


def _event_dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [
        {"type": e.event_type, "version": e.event_version, "data": e.model_dump(mode="json")}
        for e in events
    ]


@dataclass(slots=True)
class Evaluation:
    """One definition's answer to one request."""

    output: Output
    command: Command | None
    events: list[Event]
    state_after: State | None
    elapsed_ms: float  # CPU time the evaluation took
    failure: str | None  # the code raised something other than a rejection


def evaluate(definition: AgentDefinition[Any], state: State, request: WalRecord) -> Evaluation:
    """Decide ``request`` with the live worker's decision path (same decision context: its
    id and the time the WAL accepted it); never raises for a failure of the code.

    MemoryError is not caught: under the sandbox's memory limit, it ends the process."""
    started = time.thread_time()
    command: Command | None = None
    try:
        command = command_of(definition, request)
        decision = decide_command(definition, state, request, command)[1]
    except (InvalidRequestError, CommandRejected) as err:
        return Evaluation(rejected_output(err.code.value), command, [], None, _ms(started), None)
    except MemoryError:
        raise
    except Exception as err:
        failure = f"{type(err).__name__}: {err}"[:500]
        output = rejected_output(ErrorCode.INTERNAL.value)
        return Evaluation(output, command, [], None, _ms(started), failure)
    output = output_of_events(_event_dicts(decision.events))
    return Evaluation(output, command, decision.events, decision.state, _ms(started), None)


def _ms(started: float) -> float:
    # CPU time of this thread, not wall time: a shadow runs under SCHED_IDLE and may be
    # preempted in the middle of an evaluation, which says nothing about the code's cost.
    return (time.thread_time() - started) * 1000
