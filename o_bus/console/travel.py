"""Time travel: an agent's state after any event, and the fields that differ between two
points, rebuilt with the code that wrote them (the same rebuild as `o-bus state --at`)."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from o_bus.agent.catalogue import Catalogue
from o_bus.console.bus import bus_of
from o_bus.errors import ErrorCode, InvalidRequestError
from o_bus.evolution.diff import MISSING, differences
from o_bus.evolution.live_code import route_definition
from o_bus.replay.rebuild import rebuild
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.registry import Registry
from o_bus.store.snapshots import SnapshotStore

__all__ = ["routes", "state_at"]


def _seq(request: Request, name: str) -> int:
    text = request.query_params.get(name, "")
    if not text.isdigit():
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST, f"{name} must be an event sequence number (0 or more)"
        )
    return int(text)


async def state_at(
    nc: Client, js: JetStreamContext, agent: str, seq: int, catalogue: Catalogue
) -> dict[str, Any]:
    """The agent's state after its ``seq``-th event; an error past the end of its history."""
    record = await Registry(js).get(agent)
    definition, live = await route_definition(js, agent, catalogue.get(record.definition))
    rebuilt = await rebuild(
        definition, JetStreamEventLog(nc, js, agent), SnapshotStore(js), at_seq=seq
    )
    if rebuilt.position.seq < seq:
        raise InvalidRequestError(
            ErrorCode.MALFORMED_REQUEST,
            f"{agent!r} has {rebuilt.position.seq} events: there is no state at {seq}",
        )
    return {
        "agent": agent,
        "seq": rebuilt.position.seq,
        "code_version": definition.version,
        "live": live,
        "state": rebuilt.state.model_dump(mode="json"),
    }


async def get_state(request: Request) -> JSONResponse:
    bus = bus_of(request)
    seq = _seq(request, "at")
    agent = request.path_params["agent"]
    return JSONResponse(await state_at(bus.nc, bus.js, agent, seq, request.app.state.catalogue))


async def get_diff(request: Request) -> JSONResponse:
    bus = bus_of(request)
    agent = request.path_params["agent"]
    catalogue = request.app.state.catalogue
    first = await state_at(bus.nc, bus.js, agent, _seq(request, "a"), catalogue)
    second = await state_at(bus.nc, bus.js, agent, _seq(request, "b"), catalogue)
    fields = {
        path: {
            **({"a": a} if a is not MISSING else {}),
            **({"b": b} if b is not MISSING else {}),
        }
        for path, (a, b) in differences(first["state"], second["state"]).items()
    }
    return JSONResponse({"agent": agent, "a": first, "b": second, "fields": fields})


routes = [
    Route("/api/agents/{agent}/state", get_state),
    Route("/api/agents/{agent}/diff", get_diff),
]
