"""Self-triggers: when an agent asks to be improved, and the service that acts on it."""

from o_bus.agent.improvement import (
    ErrorRateAbove,
    Every,
    FitnessBelow,
    HandOff,
    OnFeedback,
    SearchBudget,
    Trigger,
)

__all__ = [
    "ErrorRateAbove",
    "Every",
    "FitnessBelow",
    "HandOff",
    "OnFeedback",
    "SearchBudget",
    "Trigger",
]
