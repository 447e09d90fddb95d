"""Blue's side, in process: run requests through an agent's pure handlers and watch for failure.

No NATS, no I/O: each step is parsed like a real request, decided on the current state and
folded in. A rejection (``CommandRejected``) or an invalid payload is an answer, not a failure.
A failure is an exception from the agent's code, a violated invariant, a step slower than the
latency limit, or (with a reference version) an answer that differs from the reference's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import CommandRejected, InvalidRequestError
from o_bus.events.model import State
from o_bus.evolution.adversarial.cases import Failure, Step
from o_bus.wire.codec import Encoding

__all__ = ["PlayResult", "answer_of", "play"]


@dataclass(slots=True)
class PlayResult:
    failure: Failure | None
    answers: list[str]  # one canonical answer per step run
    slowest_ms: float


def _state(definition: AgentDefinition[Any], start: dict[str, Any] | None) -> State:
    state: State = (
        definition.initial_state() if start is None else definition.state_type.model_validate(start)
    )
    return state


def answer_of(definition: AgentDefinition[Any], state: State, step: Step) -> tuple[str, State]:
    """(the canonical answer to ``step``, the state after it). Exceptions from the agent's code
    propagate; rejections and invalid payloads are answers."""
    try:
        body = b"{}" if step.data is None else to_json(step.data)
        command = definition.parse_command(step.command, body, Encoding.JSON)
        decision = definition.decide(state, command)
    except (CommandRejected, InvalidRequestError) as err:
        return f"rejected:{err.code}", state
    events = [[e.event_type, e.model_dump(mode="json")] for e in decision.events]
    return to_json(events).decode(), decision.state


def play(
    definition: AgentDefinition[Any],
    steps: list[Step],
    *,
    start_state: dict[str, Any] | None = None,
    reference: AgentDefinition[Any] | None = None,
    latency_ms: float | None = None,
) -> PlayResult:
    """Run ``steps`` from ``start_state``; stop at the first failure."""
    state = _state(definition, start_state)
    ref_state = _state(reference, start_state) if reference is not None else None
    answers: list[str] = []
    slowest = 0.0
    for index, step in enumerate(steps):
        began = time.perf_counter()
        try:
            answer, state = answer_of(definition, state, step)
        except Exception as err:  # the agent's own code failed: that is what blue looks for
            failure = Failure(
                kind="exception", step=index, detail=type(err).__name__, message=str(err)[:500]
            )
            return PlayResult(failure, answers, slowest)
        elapsed = (time.perf_counter() - began) * 1000
        slowest = max(slowest, elapsed)
        answers.append(answer)
        broken = definition.violated_invariants(state)
        if broken:
            failure = Failure(kind="invariant", step=index, detail=broken[0], message=answer)
            return PlayResult(failure, answers, slowest)
        if latency_ms is not None and elapsed > latency_ms:
            failure = Failure(
                kind="latency", step=index, detail=step.command, message=f"{elapsed:.1f} ms"
            )
            return PlayResult(failure, answers, slowest)
        if reference is not None and ref_state is not None:
            try:
                ref_answer, ref_state = answer_of(reference, ref_state, step)
            except Exception as err:
                ref_answer = f"reference raised {type(err).__name__}"
            if ref_answer != answer:
                failure = Failure(
                    kind="divergence",
                    step=index,
                    detail=step.command,
                    message=f"{answer[:200]} != reference {ref_answer[:200]}",
                )
                return PlayResult(failure, answers, slowest)
    return PlayResult(None, answers, slowest)
