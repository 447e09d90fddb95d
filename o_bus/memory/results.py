"""What memory queries return: search hits and episodes (JSON-serialisable models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o_bus.memory.items import Tier

__all__ = ["Episode", "EpisodeEvent", "Hit"]


class Hit(BaseModel):
    """A remembered item found by a semantic search; ``score`` is the cosine similarity."""

    model_config = ConfigDict(frozen=True)
    id: str
    text: str
    score: float
    kind: str
    importance: float
    tier: Tier
    metadata: dict[str, Any]
    seq: int = Field(description="agent sequence of the event that remembered the item")
    at: str


class EpisodeEvent(BaseModel):
    model_config = ConfigDict(frozen=True)
    seq: int
    type: str
    data: Any


class Episode(BaseModel):
    """One request and what came of it: the request (from the WAL, while it is kept there),
    the events it produced, and its outcome (``ok``, ``rejected``, ``noop``, ``duplicate``)."""

    model_config = ConfigDict(frozen=True)
    number: int = Field(description="1-based position among the agent's episodes")
    request_id: str
    wal_seq: int
    command: str | None = Field(description="the request's command; null once out of the WAL")
    request: Any = Field(description="the request's data (or its size when large)")
    requested_at: str | None
    at: str = Field(description="when the outcome became durable")
    outcome: str
    error_code: str | None = None
    error_message: str | None = None
    events: list[EpisodeEvent]
