"""What an agent remembers: one memory item, and the limits on what it may hold."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MAX_TEXT", "MemoryItem", "Tier"]

MAX_TEXT: Final = 16_384  # characters of one item's text
Tier = Literal["short", "long"]


class MemoryItem(BaseModel):
    """One remembered item. ``at`` is the ISO-8601 UTC time the item was remembered."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    kind: str = Field(default="note", min_length=1, max_length=64)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    at: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text
