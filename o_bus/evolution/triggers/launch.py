"""Where a firing trigger hands over to the search engine.

:func:`start_search` is the one place that calls the search engine. It looks the engine's entry
point up by name (``o_bus.evolution.search:run_triggered_search``); where the engine is not
installed, the outcome says so and the firing stays recorded.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from o_bus.agent.improvement import SearchBudget

__all__ = ["SEARCH_ENTRY_POINT", "Launcher", "SearchOutcome", "SearchRequest", "start_search"]

SEARCH_ENTRY_POINT = "o_bus.evolution.search:run_triggered_search"


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """What a trigger asks of the search engine: which agent, why, and the most it may spend."""

    agent: str
    search_id: str
    reason: str
    budget: SearchBudget
    nats_url: str
    source_file: str | None = None  # the registered definition's file, when no version is live


@dataclass(slots=True)
class SearchOutcome:
    status: str  # "finished" | "unavailable" | "failed" | "timed_out" | "abandoned"
    detail: dict[str, Any] = field(default_factory=dict)


Launcher = Callable[[SearchRequest], Awaitable[SearchOutcome]]


async def start_search(request: SearchRequest) -> SearchOutcome:
    """Run one search through the search engine's entry point and report how it ended."""
    module_name, _, attr = SEARCH_ENTRY_POINT.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return SearchOutcome("unavailable", {"reason": f"{module_name} is not installed"})
    entry = getattr(module, attr, None)
    if entry is None:
        return SearchOutcome("unavailable", {"reason": f"{SEARCH_ENTRY_POINT} does not exist"})
    result = await entry(request)
    detail = result if isinstance(result, dict) else {"result": repr(result)[:500]}
    return SearchOutcome("finished", detail)
