"""Where a search starts, and the entry point self-triggers call.

:func:`starting_source` finds the version a search starts from: a file given explicitly,
else the code version the agent's route serves live, else the installed definition's file.
:func:`run_triggered_search` runs a search for a trigger's request (agent, search id, reason,
budget) on the agent's own recent traffic and reports the result as a dict.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path
from typing import Any, Protocol

from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.common.connect import connect
from o_bus.errors import ConfigurationError, InvalidRequestError
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.search.config import SearchConfig
from o_bus.store.registry import Registry

__all__ = [
    "TRIGGER_WINDOW",
    "TriggerBudget",
    "TriggerRequest",
    "definition_file",
    "run_triggered_search",
    "starting_source",
]

TRIGGER_WINDOW = 500  # recent WAL requests a triggered search evaluates on


class TriggerBudget(Protocol):
    @property
    def max_evaluations(self) -> int: ...
    @property
    def cpu_seconds(self) -> float: ...
    @property
    def wall_seconds(self) -> float: ...


class TriggerRequest(Protocol):
    @property
    def agent(self) -> str: ...
    @property
    def search_id(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def budget(self) -> TriggerBudget: ...
    @property
    def nats_url(self) -> str: ...


async def starting_source(js: JetStreamContext, agent: str, path: Path | None) -> tuple[str, str]:
    """(source, filename) of the version a search starts from: ``--source``, else the route's
    live code version, else the installed definition's file."""
    if path is not None:
        return await asyncio.to_thread(path.read_text), path.name
    route, _ = await RouteStore(js).get(agent)
    if route.live:
        code = CodeStore(js, default_cache_dir())
        version = await code.get(agent, route.live)
        version.verify()  # a search starts only from code a trusted key signed
        fetched = await code.fetch(version.digest)
        return await asyncio.to_thread(fetched.read_text), version.filename
    record = await Registry(js).get(agent)
    try:
        definition = Catalogue.discover().get(record.definition)
    except InvalidRequestError as err:
        raise ConfigurationError(
            f"{agent!r} serves no deployed code version and its definition is not installed: "
            "give the starting version with --source FILE"
        ) from err
    file = definition_file(definition)
    if file is None:
        raise ConfigurationError(
            f"cannot find the source of {agent!r}'s definition: give it with --source FILE"
        )
    return await asyncio.to_thread(file.read_text), file.name


def definition_file(definition: object) -> Path | None:
    """The file of the module that defines ``definition``, if it was loaded from one."""
    module = next(
        (
            m
            for m in list(sys.modules.values())
            if any(v is definition for v in getattr(m, "__dict__", {}).values())
        ),
        None,
    )
    file = inspect.getsourcefile(module) if module is not None else None
    return Path(file) if file is not None else None


async def run_triggered_search(request: TriggerRequest) -> dict[str, Any]:
    """Run the search a trigger asked for, within its budget, and hand its winner to the
    arbiter when it beats the starting version by the agent's margin; the result as a dict."""
    from o_bus.evolution.search.engine import run_search

    async with connect(request.nats_url, f"o-bus-search-{request.agent}") as (nc, js):
        try:
            source, filename = await starting_source(js, request.agent, None)
        except ConfigurationError:
            given = getattr(request, "source_file", None)  # the trigger service's definition
            if given is None:
                raise
            source, filename = await starting_source(js, request.agent, Path(given))
        config = SearchConfig(
            agent=request.agent,
            source=source,
            filename=filename,
            window=TRIGGER_WINDOW,
            generations=1000,
            max_evals=request.budget.max_evaluations,
            max_cpu_seconds=request.budget.cpu_seconds,
            max_seconds=request.budget.wall_seconds,
            search_id=request.search_id,
            hand_off=True,
            by=f"self-trigger: {request.reason}"[:200],
        )
        result = await run_search(nc, js, config)
    return result.model_dump(mode="json")
