"""Short-term memory (a bounded window of recent items) and the consolidation rule that moves
items out of it: to long-term memory when important enough, otherwise dropped.

Everything here is pure: handlers decide with these functions and record the decision in an
event, and appliers fold that event. Replaying the events gives back the same window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from o_bus.memory.items import MemoryItem

__all__ = ["ConsolidationRule", "Eviction", "ShortTermMemory", "parse_time"]


class ConsolidationRule(BaseModel):
    """How items leave short-term memory, as the agent sets it.

    - ``capacity``: the window's bound; remembering into a full window evicts the oldest item.
    - ``keep_recent`` (count): a consolidation keeps at most this many most recent items.
    - ``max_age_seconds`` (age): a consolidation moves out items older than this.
    - ``min_importance`` (importance): an item leaving the window goes to long-term memory when
      its importance is at least this; otherwise it is dropped (forgotten).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    capacity: int = Field(default=32, ge=1, le=10_000)
    keep_recent: int = Field(default=8, ge=0, le=10_000)
    max_age_seconds: float | None = Field(default=None, gt=0)
    min_importance: float = Field(default=0.5, ge=0.0, le=1.0)


class Eviction(BaseModel):
    """Items leaving short-term memory: ``promoted`` to long-term, or ``dropped``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    promoted: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.promoted) | frozenset(self.dropped)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time as written by the bus (``...Z``), timezone-aware."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ShortTermMemory(BaseModel):
    """The most recent items, oldest first, never more than the rule's capacity."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    items: tuple[MemoryItem, ...] = ()

    def find(self, item_id: str) -> MemoryItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    def _split(self, leaving: list[MemoryItem], rule: ConsolidationRule) -> Eviction:
        return Eviction(
            promoted=tuple(i.id for i in leaving if i.importance >= rule.min_importance),
            dropped=tuple(i.id for i in leaving if i.importance < rule.min_importance),
        )

    def admit(self, rule: ConsolidationRule) -> Eviction:
        """What must leave so that one more item fits within ``rule.capacity``."""
        excess = len(self.items) + 1 - rule.capacity
        return self._split(list(self.items[: max(excess, 0)]), rule)

    def fit(self, rule: ConsolidationRule) -> Eviction:
        """What must leave so that the window fits ``rule.capacity`` (after the rule changed)."""
        excess = len(self.items) - rule.capacity
        return self._split(list(self.items[: max(excess, 0)]), rule)

    def consolidation(self, rule: ConsolidationRule, now: datetime) -> Eviction:
        """What a consolidation at ``now`` moves out: beyond the ``keep_recent`` most recent,
        or older than ``max_age_seconds``."""
        cut = len(self.items) - rule.keep_recent
        leaving = []
        for index, item in enumerate(self.items):
            too_many = index < cut
            too_old = rule.max_age_seconds is not None and now - parse_time(item.at) > timedelta(
                seconds=rule.max_age_seconds
            )
            if too_many or too_old:
                leaving.append(item)
        return self._split(leaving, rule)

    def with_item(self, item: MemoryItem, evicted: Eviction) -> ShortTermMemory:
        return ShortTermMemory(items=(*self.without(evicted.ids).items, item))

    def without(self, ids: frozenset[str]) -> ShortTermMemory:
        if not ids:
            return self
        return ShortTermMemory(items=tuple(i for i in self.items if i.id not in ids))
