"""What live recorded for one request, as the shadow reads it: its outcome as an output to
compare, its events decoded by either code version, and the fitness of both outcomes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from o_bus.agent.context import DecisionContext
from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ErrorCode
from o_bus.events.model import Event, State
from o_bus.store.event_records import H_TYPE, H_VERSION
from o_bus.wire.headers import O_ERROR_CODE, O_OUTCOME

from .evaluation import Evaluation, Output, output_of_events, rejected_output

__all__ = ["LiveRecord", "decode", "fitness_scores", "recorded_output"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LiveRecord:
    kind: str  # "evt" | "outcome"
    headers: dict[str, str]
    data: bytes


def decode(definition: AgentDefinition[Any], record: LiveRecord) -> Event:
    """A live event record as ``definition``'s event (upcast if needed)."""
    headers = record.headers
    return definition.decode_event(
        headers.get(H_TYPE, ""), int(headers.get(H_VERSION, "1")), record.data
    )


def recorded_output(records: list[LiveRecord]) -> Output:
    """What live answered, from its records of the request."""
    for record in records:
        if record.kind == "outcome" and record.headers.get(O_OUTCOME) == "rejected":
            return rejected_output(record.headers.get(O_ERROR_CODE, ErrorCode.INTERNAL.value))
    return output_of_events(
        [
            {
                "type": r.headers.get(H_TYPE, ""),
                "version": int(r.headers.get(H_VERSION, "1")),
                "data": from_json(r.data) if r.data else None,
            }
            for r in records
            if r.kind == "evt"
        ]
    )


def fitness_scores(
    live: AgentDefinition[Any],
    candidate: AgentDefinition[Any],
    states: tuple[State, State],
    evaluations: tuple[Evaluation, Evaluation],
    live_events: list[LiveRecord],
    context: DecisionContext | None = None,
) -> tuple[float, float] | None:
    """(live's, the candidate's) fitness on the same state and command, by the live code's
    fitness function if it has one, else the candidate's; None when it cannot be measured.
    ``states`` and ``evaluations`` are (live code's, candidate's); ``context`` is the
    request's decision context, for a fitness function that declares one."""
    judge_is_live = live.fitness_function is not None
    judge = live if judge_is_live else candidate
    state, side = (states[0], evaluations[0]) if judge_is_live else (states[1], evaluations[1])
    if judge.fitness_function is None or side.command is None:
        return None
    try:
        live_outcome = [decode(judge, r) for r in live_events]
        candidate_outcome = [
            judge.decode_event(e.event_type, e.event_version, e.model_dump_json().encode())
            for e in evaluations[1].events
        ]
        live_score = judge.score(state, side.command, live_outcome, context)
        candidate_score = judge.score(state, side.command, candidate_outcome, context)
    except Exception as err:
        log.debug("fitness not measured: %s", err)
        return None
    if live_score is None or candidate_score is None:
        return None
    return live_score, candidate_score
