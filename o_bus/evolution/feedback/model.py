"""What feedback says: a score in [-1, 1] and optional text about one request of an agent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NEGATIVE_BELOW", "Feedback", "FeedbackAccepted", "FeedbackIn"]

NEGATIVE_BELOW = 0.0  # a score below this puts the request into the regression set


class FeedbackIn(BaseModel):
    """The body a client sends on ``o.feedback.<agent>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    request_id: str = Field(min_length=1, max_length=256, description="the rated request's id")
    score: float = Field(ge=-1.0, le=1.0, description="-1 (bad) .. 1 (good)", allow_inf_nan=False)
    text: str | None = Field(default=None, max_length=4000, description="what was wrong or right")
    by: str | None = Field(default=None, max_length=256, description="who rates")


class Feedback(FeedbackIn):
    """Feedback as recorded in ``O_FEEDBACK``: the input plus agent, time and stream position."""

    agent: str
    at: str = Field(description="ISO-8601 time of acceptance")
    seq: int = Field(default=0, description="position in the O_FEEDBACK stream (0: not stored)")

    @property
    def negative(self) -> bool:
        return self.score < NEGATIVE_BELOW


class FeedbackAccepted(BaseModel):
    """The reply to an accepted feedback (a refused one gets the bus's ``ErrorReply``)."""

    ok: Literal[True] = True
    agent: str
    request_id: str
    seq: int = Field(description="position of the feedback in the O_FEEDBACK stream")
    regression: bool = Field(description="the rated request joined the agent's regression set")
