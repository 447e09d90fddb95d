"""The events memory is made of. Any agent that emits them gets the memory projection
(semantic index and tiers) for free; the reference agent ``memory`` is one such agent."""

from __future__ import annotations

from o_bus.events.model import Event
from o_bus.memory.items import MemoryItem
from o_bus.memory.short_term import ConsolidationRule, Eviction

__all__ = ["Consolidated", "Forgotten", "MemoryConfigured", "Remembered"]


class Remembered(Event):
    """An item entered short-term memory; ``evicted`` says what left the full window for it."""

    item: MemoryItem
    evicted: Eviction = Eviction()


class Forgotten(Event):
    """An item was forgotten on request, wherever it was."""

    id: str


class Consolidated(Event):
    """A consolidation at ``at`` moved items out of short-term memory."""

    evicted: Eviction
    at: str


class MemoryConfigured(Event):
    """The consolidation rule changed; ``evicted`` is what no longer fit the window."""

    rule: ConsolidationRule
    evicted: Eviction = Eviction()
