"""The self-evolution engine: propose versions of an agent, evaluate them offline on recorded
traffic, select, and keep the whole history as a lineage stream.

Entry point for other components (triggers, red/blue, the CLI)::

    from o_bus.evolution.search import SearchConfig, run_search

    result = await run_search(nc, js, SearchConfig(agent="autoscaler", source=..., dataset=...))
    result.best_version  # a deployed code version, ready for `o-bus evolve start`

``run_search`` is resumable: give ``search_id`` of a recorded search and it continues where
the lineage stream says it was, re-running only evaluations that were in flight.

Self-triggers call ``await run_triggered_search(request)`` (agent, search_id, reason, budget
with max_evaluations / cpu_seconds / wall_seconds, nats_url): a search on the agent's recent
WAL traffic within that budget, its result as a dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from o_bus.evolution.search.config import SearchConfig, SearchResult

if TYPE_CHECKING:
    from o_bus.evolution.search.engine import run_search
    from o_bus.evolution.search.starting import run_triggered_search

__all__ = ["SearchConfig", "SearchResult", "run_search", "run_triggered_search"]


def __getattr__(name: str) -> Any:
    # The engine (and NATS) load on first use: evaluation processes import this package too,
    # and each one should start as fast as it can.
    if name == "run_search":
        from o_bus.evolution.search.engine import run_search

        return run_search
    if name == "run_triggered_search":
        from o_bus.evolution.search.starting import run_triggered_search

        return run_triggered_search
    raise AttributeError(name)
