"""Domain records: commands, events and state, all immutable pydantic models.

An event type has a stable name and an integer schema version; when a type's schema changes,
bump ``event_version`` and register an upcaster that migrates the stored older data.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Command", "Event", "State", "snake_case"]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Command(_Record):
    """A request to an agent. ``command_name`` defaults to the class name in snake_case."""

    command_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("command_name"):
            cls.command_name = snake_case(cls.__name__)


class Event(_Record):
    """A fact that happened. ``event_type`` defaults to the class name in snake_case."""

    event_type: ClassVar[str] = ""
    event_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("event_type"):
            cls.event_type = snake_case(cls.__name__)


class State(BaseModel):
    """An agent's state. Appliers return a new state (``model_copy(update=...)``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
