"""Bounded, fair intake: how many requests the splitter lets wait for each agent and sender.

A request is *outstanding* from the moment the splitter admits it until the agent has
processed it, which the agent's heartbeats say (``wal_seq``, about ten a second). Admission
refuses (``overloaded``) instead of queueing without bound:

- ``agent``: the agent already has ``per_agent`` outstanding requests from this splitter;
- ``sender``: this sender (``ce-source``) has ``per_sender`` outstanding over all agents, or
  more than its share of the agent: all of the window when it is the agent's only sender,
  else ``contended_share`` (or an equal split, if smaller). A flood therefore never holds more
  than a small, bounded part of an agent's queue while someone else is waiting for it.

Until an agent's first heartbeat arrives (an agent run in-process, with no heartbeat), a
request stops being outstanding once the WAL has stored it: only the WAL writer's own bound
applies. A splitter counts only what it admitted itself; several splitters each apply it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["Admission", "Limits", "Scope"]

Scope = Literal["agent", "sender"]
_UNKNOWN: Final = -1


@dataclass(frozen=True, slots=True)
class Limits:
    per_agent: int = 2048
    per_sender: int = 2048
    contended_share: int = 128


@dataclass(slots=True)
class _Agent:
    processed: int = _UNKNOWN  # the WAL sequence its active process reported, once it did
    outstanding: int = 0
    senders: Counter[str] = field(default_factory=Counter)
    stored: deque[tuple[int, str]] = field(default_factory=deque)  # (wal seq, sender)


class Admission:
    """Counts outstanding requests per agent and sender; says who may be admitted next."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._agents: dict[str, _Agent] = {}
        self._senders: Counter[str] = Counter()

    def refusal(self, agent: str, sender: str) -> Scope | None:
        """Why a request from ``sender`` to ``agent`` cannot be admitted now, or None."""
        entry = self._agents.get(agent)
        if entry is None:
            return None
        limits = self.limits
        if entry.outstanding >= limits.per_agent:
            return "agent"
        held = entry.senders.get(sender, 0)
        if self._senders.get(sender, 0) >= limits.per_sender:
            return "sender"
        others = len(entry.senders) - (1 if held else 0)
        if others and held >= min(limits.contended_share, limits.per_agent // (others + 1)):
            return "sender"
        return None

    def admit(self, agent: str, sender: str) -> None:
        entry = self._agents.get(agent)
        if entry is None:
            entry = self._agents[agent] = _Agent()
        entry.outstanding += 1
        entry.senders[sender] += 1
        self._senders[sender] += 1

    def stored(self, agent: str, sender: str, wal_seq: int) -> None:
        """The WAL stored the request at ``wal_seq``: outstanding until the agent passes it."""
        entry = self._agents[agent]
        if entry.processed == _UNKNOWN or wal_seq <= entry.processed:
            self._release(entry, sender)
        else:
            entry.stored.append((wal_seq, sender))

    def not_stored(self, agent: str, sender: str) -> None:
        """The append failed or was a duplicate: nothing new waits for the agent."""
        self._release(self._agents[agent], sender)

    def processed(self, agent: str, wal_seq: int) -> None:
        """The agent's active process has processed the WAL up to ``wal_seq``."""
        entry = self._agents.get(agent)
        if entry is None:
            entry = self._agents[agent] = _Agent()
        entry.processed = max(entry.processed, wal_seq)
        stored = entry.stored
        while stored and stored[0][0] <= entry.processed:
            self._release(entry, stored.popleft()[1])

    def outstanding(self, agent: str) -> int:
        entry = self._agents.get(agent)
        return entry.outstanding if entry else 0

    def outstanding_by_agent(self) -> dict[str, int]:
        return {name: entry.outstanding for name, entry in self._agents.items()}

    def _release(self, entry: _Agent, sender: str) -> None:
        entry.outstanding -= 1
        _decrement(entry.senders, sender)
        _decrement(self._senders, sender)


def _decrement(counts: Counter[str], key: str) -> None:
    left = counts[key] - 1
    if left > 0:
        counts[key] = left
    else:
        del counts[key]
