"""The agents view: each registered agent with its processes (host, role, pid, restarts) and
health, from the registry, the supervisor's records and the health monitor's summaries."""

from __future__ import annotations

import contextlib
from typing import Any

import nats.errors
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from o_bus.console.bus import bus_of
from o_bus.errors import OBusError
from o_bus.store import layout
from o_bus.store.placement import PlacementStore
from o_bus.store.registry import Registry
from o_bus.supervision.records import AgentSupervision

__all__ = ["routes"]


async def _supervision(js: Any) -> dict[str, AgentSupervision]:
    found: dict[str, AgentSupervision] = {}
    try:
        kv = await js.key_value(layout.SUPERVISOR_BUCKET)
        keys = await kv.keys()
    except (nats.errors.Error, OBusError):
        return found  # no supervisor has written yet: nothing to add
    for key in keys:
        with contextlib.suppress(nats.errors.Error, ValueError):
            entry = await kv.get(key)
            if entry.value:
                found[key] = AgentSupervision.model_validate_json(entry.value)
    return found


async def list_agents(request: Request) -> JSONResponse:
    bus = bus_of(request)
    records = await Registry(bus.js).all()
    supervision = await _supervision(bus.js)
    health = (request.app.state.figures.latest or {}).get("agents") or {}
    placement = PlacementStore(bus.js)
    rows = []
    for record in records:
        sup = supervision.get(record.name)
        summary = health.get(record.name) or {}
        hosts = {p.pid: p.host for p in sup.processes} if sup else {}
        processes = [
            {**p, "host": hosts.get(p.get("pid"), "")} for p in summary.get("processes", [])
        ]
        rows.append(
            {
                "name": record.name,
                "definition": record.definition,
                "placed_on": await placement.host_of(record.name) or "default",
                "status": sup.status if sup else None,
                "reason": sup.reason if sup else "",
                "restarts": sup.restarts if sup else 0,
                "supervisor": sup.supervisor if sup else None,
                "up": summary.get("up", False),
                "lifecycle": summary.get("lifecycle"),
                "code_version": summary.get("code_version"),
                "event_log_seq": summary.get("event_log_seq"),
                "wal_backlog": summary.get("wal_backlog"),
                "requests": summary.get("requests", 0),
                "errors": summary.get("errors", 0),
                "processes": processes,
            }
        )
    return JSONResponse({"agents": rows, "role": request.state.role})


routes = [Route("/api/agents", list_agents)]
