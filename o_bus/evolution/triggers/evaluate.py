"""Decide whether one of an agent's triggers fires now, and say why.

Each trigger is judged on recorded figures only (see :mod:`.figures`). Too few requests for a
rate or a mean is no verdict, never a firing. The first trigger that is due wins; the others
are judged again on the next round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.definition import AgentDefinition
from o_bus.agent.improvement import ErrorRateAbove, Every, FitnessBelow, OnFeedback, Trigger
from o_bus.evolution.feedback.log import FeedbackLog
from o_bus.evolution.triggers.figures import error_rate, recent_fitness, recent_requests
from o_bus.evolution.triggers.records import TriggerStatus

__all__ = ["Firing", "due", "trigger_key"]


@dataclass(frozen=True, slots=True)
class Firing:
    trigger: str
    reason: str
    feedback_seq: int = 0


def trigger_key(index: int, trigger: Trigger) -> str:
    return f"{index}:{trigger.kind}"


async def _judge(
    nc: Client,
    js: JetStreamContext,
    definition: AgentDefinition[Any],
    agent: str,
    key: str,
    trigger: Trigger,
    status: TriggerStatus,
    now: float,
    since: float,
) -> Firing | None:
    if isinstance(trigger, Every):
        last = status.last_fired.get(key, since)
        if now - last >= trigger.seconds:
            return Firing(
                key, f"schedule: every {trigger.seconds:g} s, last {now - last:.0f} s ago"
            )
        return None
    if isinstance(trigger, ErrorRateAbove):
        errors, total = error_rate(await recent_requests(js, agent, trigger.window))
        if total >= trigger.min_requests and errors / total > trigger.rate:
            return Firing(
                key,
                f"error rate {errors}/{total} ({errors / total:.1%}) above {trigger.rate:.1%} "
                f"over the last {total} requests",
            )
        return None
    if isinstance(trigger, FitnessBelow):
        scores = await recent_fitness(nc, js, definition, agent, trigger.window)
        if len(scores) >= trigger.min_requests:
            mean = sum(scores) / len(scores)
            if mean < trigger.threshold:
                return Firing(
                    key,
                    f"mean fitness {mean:.4g} below {trigger.threshold:g} "
                    f"over the last {len(scores)} requests",
                )
        return None
    assert isinstance(trigger, OnFeedback)
    seen = status.feedback_seq.get(key, 0)
    negative = [
        fb for fb in await FeedbackLog(js).read(agent, after_seq=seen) if fb.score < trigger.below
    ]
    if len(negative) >= trigger.count:
        texts = "; ".join(fb.text for fb in negative[-3:] if fb.text)
        return Firing(
            key,
            f"{len(negative)} feedback(s) scored below {trigger.below:g}"
            + (f": {texts[:300]}" if texts else ""),
            feedback_seq=negative[-1].seq,
        )
    return None


async def due(
    nc: Client,
    js: JetStreamContext,
    definition: AgentDefinition[Any],
    agent: str,
    status: TriggerStatus,
    *,
    now: float,
    since: float,
) -> Firing | None:
    """The first of ``definition``'s triggers (run as ``agent``) that is due, or None.
    ``since`` stands in for the last firing of a schedule that never fired (when the service
    started watching)."""
    for index, trigger in enumerate(definition.triggers):
        firing = await _judge(
            nc, js, definition, agent, trigger_key(index, trigger), trigger, status, now, since
        )
        if firing is not None:
            return firing
    return None
