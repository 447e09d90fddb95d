"""The requests sent to each reference agent when its golden history is recorded.

Each script exercises every event type of its agent, a rejection (an outcome record) where the
agent can reject, and runs past a few snapshots (the recorder snapshots every few events).
A module given to the recorder brings its own script as ``golden_traffic``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["REFERENCE_TRAFFIC", "Traffic"]

Traffic = list[tuple[str, dict[str, Any]]]

_COUNTER: Final[Traffic] = [
    *[("increment", {"by": by}) for by in (1, 2, 3, -4, 5, 8, 13)],
    ("reset", {}),
    *[("increment", {"by": by}) for by in (21, -34, 55, 89)],
]

_ECHO: Final[Traffic] = [("say", {"text": text}) for text in ("hello", "", "é ✓", "{}", "last")]

_MEMORY: Final[Traffic] = [
    ("configure", {"capacity": 4, "keep_recent": 2}),
    ("remember", {"text": "the sky is blue", "importance": 0.9}),
    ("remember", {"text": "milk, eggs, bread", "kind": "todo"}),
    ("remember", {"text": "meeting at noon", "metadata": {"room": "4b"}}),
    ("forget", {"id": "m2"}),
    ("forget", {"id": "m99"}),  # rejected: an outcome record, no event
    ("remember", {"text": "call the plumber", "importance": 0.2}),
    ("remember", {"text": "the cat is asleep"}),
    ("remember", {"text": "bus leaves at 8", "kind": "note"}),
    ("consolidate", {"now": "2100-01-01T00:00:00Z"}),
    ("configure", {"capacity": 2}),
]

REFERENCE_TRAFFIC: Final[dict[str, Traffic]] = {
    "counter": _COUNTER,
    "echo": _ECHO,
    "memory": _MEMORY,
}
