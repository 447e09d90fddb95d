"""What an agent declares about its own improvement: triggers and a search budget.

The trigger service (handlers/triggers) judges the triggers; see docs/self-improvement.md.

Example::

    quota = AgentDefinition(
        "quota", state=Quota, version="1.0.0",
        triggers=[ErrorRateAbove(rate=0.05, window=200), OnFeedback(below=0.0, count=3)],
        search_budget=SearchBudget(max_evaluations=500, cpu_seconds=60, wall_seconds=120),
        handoff=HandOff(margin=0.05),
    )
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorRateAbove",
    "Every",
    "FitnessBelow",
    "HandOff",
    "OnFeedback",
    "SearchBudget",
    "Trigger",
]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FitnessBelow(_Spec):
    """Mean fitness of the last ``window`` requests (by the agent's ``@fitness``) < threshold."""

    kind: Literal["fitness_below"] = "fitness_below"
    threshold: float
    window: int = Field(default=100, ge=1, le=10_000)
    min_requests: int = Field(default=20, ge=1, description="fewer requests: no verdict")


class ErrorRateAbove(_Spec):
    """Share of errors (crashes, invalid events, timeouts; not business rejections) among the
    last ``window`` requests > ``rate``."""

    kind: Literal["error_rate_above"] = "error_rate_above"
    rate: float = Field(ge=0.0, le=1.0)
    window: int = Field(default=100, ge=1, le=10_000)
    min_requests: int = Field(default=20, ge=1, description="fewer requests: no verdict")


class Every(_Spec):
    """A schedule: fire every ``seconds`` since the last firing of this trigger."""

    kind: Literal["every"] = "every"
    seconds: float = Field(gt=0)


class OnFeedback(_Spec):
    """``count`` feedbacks with a score below ``below`` since this trigger last fired."""

    kind: Literal["feedback"] = "feedback"
    below: float = Field(default=0.0, ge=-1.0, le=1.0)
    count: int = Field(default=1, ge=1)


Trigger = Annotated[FitnessBelow | ErrorRateAbove | Every | OnFeedback, Field(discriminator="kind")]


class SearchBudget(_Spec):
    """The most one triggered search may spend; the first limit reached ends it."""

    max_evaluations: int = Field(default=200, ge=1)
    cpu_seconds: float = Field(default=60.0, gt=0)
    wall_seconds: float = Field(default=120.0, gt=0)


class HandOff(_Spec):
    """When a triggered search's winner goes to the evolution arbiter by itself, and the
    arbiter's plan for it (shadow, canary steps, gates; ``o-bus evolve start``'s options).

    The winner is handed over only when its offline fitness beats the starting version's by
    at least ``margin`` (absolute, on the same dataset); the arbiter then decides on live
    traffic, as for any candidate."""

    margin: float = Field(default=0.05, ge=0.0, description="offline fitness gain required")
    enabled: bool = True
    canary_steps: tuple[int, ...] = (10, 50)
    min_requests: int = Field(default=50, ge=1)
    min_canary_requests: int = Field(default=20, ge=1)
    min_stage_seconds: float = Field(default=2.0, ge=0)
    bake_seconds: float = Field(default=3.0, ge=0)
    min_fitness_gain: float = 0.0
