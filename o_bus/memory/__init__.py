"""Agent memory: short-term, long-term, episodic and semantic, all derived from events.

- :class:`ShortTermMemory` and :class:`ConsolidationRule`: pure building blocks for an agent's
  state; handlers decide with them and record the decision in the events of
  :mod:`o_bus.memory.events`, so replaying the log gives back the same memory.
- :class:`MemoryProjection`: a projection of the agent's log into a SQLite file (a sqlite-vec
  vector index of the remembered items, their tier, and the episodes), kept current by tailing
  the log and rebuilt from it when missing or stale.
- :class:`SemanticIndex` / :class:`MemoryIndex`: what query handlers read (``search``,
  ``episodes``, ``stats``).
- :class:`Embedder`: the embedding interface; :class:`HashingEmbedder` is the offline default.

See ``agents/memory.py`` for an agent that uses all of it.
"""

from o_bus.memory.embedder import Embedder, HashingEmbedder
from o_bus.memory.events import Consolidated, Forgotten, MemoryConfigured, Remembered
from o_bus.memory.index import MemoryIndex
from o_bus.memory.items import MAX_TEXT, MemoryItem
from o_bus.memory.projection import MemoryProjection, default_path
from o_bus.memory.results import Episode, EpisodeEvent, Hit
from o_bus.memory.semantic import MAX_K, SemanticIndex
from o_bus.memory.short_term import ConsolidationRule, Eviction, ShortTermMemory, parse_time

__all__ = [
    "MAX_K",
    "MAX_TEXT",
    "Consolidated",
    "ConsolidationRule",
    "Embedder",
    "Episode",
    "EpisodeEvent",
    "Eviction",
    "Forgotten",
    "HashingEmbedder",
    "Hit",
    "MemoryConfigured",
    "MemoryIndex",
    "MemoryItem",
    "MemoryProjection",
    "Remembered",
    "SemanticIndex",
    "ShortTermMemory",
    "default_path",
    "parse_time",
]
