"""Bounded, fair intake: how many requests the splitter lets wait for each agent and sender.

A request is *outstanding* from the moment the splitter admits it until the agent has
processed it, which the agent's heartbeats say (``wal_seq``, about ten a second). Admission
refuses (``overloaded``) instead of queueing without bound:

- ``agent``: the agent already has ``per_agent`` outstanding requests from this splitter;
- ``sender``: this sender (``ce-source``) has ``per_sender`` outstanding over all agents, or
  more than its share of the agent: all of the window when it is the agent's only sender,
  else ``contended_share`` (or an equal split, if smaller, and at least one). A flood
  therefore never holds more than a small, bounded part of an agent's queue while someone
  else is waiting for it.

A sender counts as another sender of the agent while it has requests outstanding, and for
``RECENT`` seconds after its last request. A client that sends one request at a time holds
nothing between two requests; were it forgotten then, a flood would take the whole window in
that moment, and the client's next request would wait behind all of it.

Until an agent's first heartbeat arrives (an agent run in-process, with no heartbeat), a
request stops being outstanding once the WAL has stored it: only the WAL writer's own bound
applies. A splitter counts only what it admitted itself; several splitters each apply it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["RECENT", "Admission", "Limits", "Scope"]

Scope = Literal["agent", "sender"]
_UNKNOWN: Final = -1
RECENT: Final = 2.0  # seconds a sender still counts as waiting at an agent after a request


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
    seen: dict[str, float] = field(default_factory=dict)  # sender -> its last request, recent
    pruned_at: float = 0.0

    def forget_quiet(self, now: float) -> None:
        """Forget the senders that sent nothing for ``RECENT`` seconds."""
        self.pruned_at = now
        quiet = [sender for sender, at in self.seen.items() if now - at > RECENT]
        for sender in quiet:
            del self.seen[sender]


class Admission:
    """Counts outstanding requests per agent and sender; says who may be admitted next."""

    def __init__(
        self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._agents: dict[str, _Agent] = {}
        self._senders: Counter[str] = Counter()

    def refusal(self, agent: str, sender: str) -> Scope | None:
        """Why a request from ``sender`` to ``agent`` cannot be admitted now, or None. The
        sender counts as waiting at the agent from now on, refused or not."""
        entry = self._agents.get(agent)
        if entry is None:
            return None
        now = self.clock()
        seen = entry.seen
        seen[sender] = now
        if now - entry.pruned_at > RECENT:
            entry.forget_quiet(now)
        limits = self.limits
        if entry.outstanding >= limits.per_agent:
            return "agent"
        held = entry.senders.get(sender, 0)
        if self._senders.get(sender, 0) >= limits.per_sender:
            return "sender"
        others = max(len(entry.senders) - (1 if held else 0), len(seen) - 1)
        share = max(1, min(limits.contended_share, limits.per_agent // (others + 1)))
        if others and held >= share:
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
