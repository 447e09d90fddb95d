"""Evolution: every run the arbiter decided on with its last stage; the current run's stage,
gate figures over time (from each decision's figures), decisions with reasons and latest
shadow diffs; the self-evolution search's lineage tree and MAP-Elites archive."""

from __future__ import annotations

from typing import Any

import nats.errors
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from o_bus.console.bus import bus_of
from o_bus.errors import NotFoundError
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.records import EvolutionDecisionRecord
from o_bus.evolution.search.lineage.projection import project
from o_bus.evolution.search.lineage.stream import LineageStream
from o_bus.evolution.search.lineage.view import archive_json, lineage_json
from o_bus.store import layout
from o_bus.store.subject_reader import read_subject

__all__ = ["routes"]

DIFFS_SHOWN = 20


async def _recent_diffs(js: Any, agent: str) -> list[dict[str, Any]]:
    subject = layout.diff_subject(agent)
    try:
        last = await js.get_msg(layout.DIFF_STREAM, subject=subject, direct=True)
    except (nats.errors.Error, NotFoundError):
        return []
    # Diffs of other agents share the stream: look back far enough to find a few of this one.
    found = await read_subject(js, layout.DIFF_STREAM, subject, max(0, last.seq - 50 * DIFFS_SHOWN))
    diffs = []
    for seq, _, body in found[-DIFFS_SHOWN:]:
        try:
            diffs.append({"seq": seq, **from_json(body)})
        except ValueError:
            continue
    return list(reversed(diffs))


async def _runs(js: Any, agent: str) -> list[dict[str, Any]]:
    """Every evolution of the agent the arbiter decided on, oldest first: its version, the
    stage and action of its last decision, and how many decisions it took."""
    runs: dict[str, dict[str, Any]] = {}
    records = await read_subject(js, layout.SYSTEM_STREAM, layout.evolution_event_subject(agent))
    for _, _, body in records:
        try:
            decision = EvolutionDecisionRecord.model_validate_json(body)
        except ValueError:
            continue
        run = runs.setdefault(
            decision.version, {"version": decision.version, "started": decision.at, "decisions": 0}
        )
        run.update(
            stage=decision.stage, action=decision.action, reason=decision.reason, at=decision.at
        )
        run["decisions"] += 1
    return list(runs.values())


async def get_evolution(request: Request) -> JSONResponse:
    bus = bus_of(request)
    agent = request.path_params["agent"]
    try:
        evolution, _ = await EvolutionStore(bus.js).get(agent)
    except NotFoundError:
        return JSONResponse(
            {"agent": agent, "evolution": None, "diffs": [], "runs": await _runs(bus.js, agent)}
        )
    return JSONResponse(
        {
            "agent": agent,
            "evolution": evolution.model_dump(mode="json"),
            "diffs": await _recent_diffs(bus.js, agent),
            "runs": await _runs(bus.js, agent),
        }
    )


async def get_lineage(request: Request) -> JSONResponse:
    bus = bus_of(request)
    agent = request.path_params["agent"]
    lineage = LineageStream(bus.js, agent)
    search = request.query_params.get("search") or await lineage.latest_search()
    if search is None:
        return JSONResponse({"agent": agent, "lineage": None, "archive": None})
    state = project(await lineage.read(search))
    return JSONResponse(
        {"agent": agent, "lineage": lineage_json(search, state), "archive": archive_json(state)}
    )


routes = [
    Route("/api/agents/{agent}/evolution", get_evolution),
    Route("/api/agents/{agent}/lineage", get_lineage),
]
