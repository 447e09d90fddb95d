"""A regression case: requests that once made a version of an agent fail, and how it failed.

Cases are plain data so they can be stored as events, sent to a sandboxed worker and replayed
against any later candidate. A case starts from ``start_state`` (the agent's initial state when
absent) and runs its steps in order.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Failure", "FailureKind", "RegressionCase", "Step"]

FailureKind = Literal["exception", "invariant", "divergence", "latency", "timeout", "feedback"]


class Step(BaseModel):
    """One request: a command name and its data, as a client would send them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    command: str
    data: Any = None


class Failure(BaseModel):
    """Why a run failed: the kind, the step where it did, and a stable signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: FailureKind
    step: int = Field(ge=0, description="index of the failing step")
    detail: str = Field(description="e.g. the invariant's name or the exception type")
    message: str = ""

    @property
    def signature(self) -> str:
        """What makes two failures the same bug: kind, detail and the failing command."""
        return f"{self.kind}:{self.detail}"


class RegressionCase(BaseModel):
    """A sequence of requests every later candidate must run without failure."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    agent: str
    source: Literal["red", "feedback"]
    steps: list[Step] = Field(
        default_factory=list, description="empty for a feedback case until read from the WAL"
    )
    start_state: dict[str, Any] | None = None
    failure: Failure | None = Field(default=None, description="how it failed when found")
    found_in: str = Field(default="", description="code version that failed it")
    request_id: str | None = Field(default=None, description="feedback: the rated request")
    wal_seq: int | None = Field(default=None, description="feedback: the request's WAL record")
    note: str = ""

    @property
    def case_id(self) -> str:
        """Content address of what is replayed: the same requests are one case."""
        payload = json.dumps(
            [self.agent, [s.model_dump() for s in self.steps], self.start_state, self.request_id],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]
