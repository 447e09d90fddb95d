"""Published records of evolution: comparisons on ``o.diff.<agent>`` and arbiter decisions
on ``o.sys.evolution.<agent>``. Clients in other languages read them (see schemas/)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o_bus.evolution.plan import EvolutionDecision

__all__ = ["DiffRecord", "EvolutionDecisionRecord"]


class DiffRecord(BaseModel):
    """A mirrored request whose candidate output differed from live's, with both outputs."""

    model_config = ConfigDict(frozen=True)
    agent: str
    version: str = Field(description="the candidate's code version digest")
    code_version: str = Field(description="the candidate definition's version")
    live_code_version: str
    wal_seq: int = Field(description="WAL sequence of the request")
    request_id: str | None
    command: str | None
    traffic: str = Field(default="shadow", description="always shadow: never a live reply")
    live: dict[str, Any] = Field(description="what live recorded: ok, error, events")
    candidate: dict[str, Any] = Field(description="what the candidate would have answered")
    fields: dict[str, Any] = Field(description="path -> {live, candidate} of counted differences")
    ignored: list[str] = Field(description="differing paths not counted (noise or ignore rules)")


class EvolutionDecisionRecord(EvolutionDecision):
    """An arbiter decision as published: the decision plus whose evolution it is."""

    agent: str
    version: str
