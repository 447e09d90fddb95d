"""What every operator takes and gives: parents in, one proposed child (or a reason) out."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from o_bus.errors import OBusError

__all__ = ["NoChild", "Operator", "Parent", "Proposal"]


class NoChild(OBusError):
    """The operator found nothing to change, or its result is not a valid source."""


@dataclass(frozen=True, slots=True)
class Parent:
    child: str
    source: str
    genome: dict[str, Any] | None
    fitness: float | None = None
    feedback: str = ""  # the evaluation's last failure or reason, for the LLM operator


@dataclass(frozen=True, slots=True)
class Proposal:
    source: str
    genome: dict[str, Any] | None
    detail: str


class Operator(Protocol):
    name: str
    arity: int  # how many parents it takes

    async def propose(self, parents: list[Parent], rng: random.Random) -> Proposal: ...
