"""Operator actions: pause, resume, reset or restart agents (one, several, or all matching a
filter), abort or roll back an evolution, re-drive dead letters. Each goes through the same
functions as the CLI (:mod:`o_bus.platform.operator_actions`), which record who and why;
viewers get 403."""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from o_bus.console.auth import require_operator
from o_bus.console.bus import bus_of
from o_bus.errors import ErrorCode, InvalidRequestError, OBusError
from o_bus.platform import operator_actions
from o_bus.store.registry import Registry

__all__ = ["routes"]


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agents: list[str] = Field(default=[], description="agent names")
    filter: str = Field(default="", description="or: a glob over agent names, e.g. 'count*'")
    dead_letters: list[int] = Field(default=[], description="re-drive: DLQ sequences")
    reason: str = Field(default="", max_length=1000)
    by: str = Field(default="", max_length=100, description="who, as the person gives it")


def _who(request: Request, body: ActionRequest) -> str:
    """The role the token grants, the name the person gave, and where they connected from."""
    client = request.client.host if request.client else "?"
    name = f" {body.by}" if body.by else ""
    return f"console {request.state.role}{name} from {client}"


async def _targets(request: Request, body: ActionRequest) -> list[str]:
    names = [record.name for record in await Registry(bus_of(request).js).all()]
    chosen = [n for n in names if n in body.agents]
    if body.filter:
        chosen += [n for n in names if fnmatch.fnmatchcase(n, body.filter) and n not in chosen]
    unknown = [a for a in body.agents if a not in names]
    if unknown:
        raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, f"no agents named {unknown}")
    if not chosen:
        raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, "no agent matches")
    return chosen


async def act(request: Request) -> JSONResponse:
    refused = require_operator(request)
    if refused is not None:
        return refused
    action = request.path_params["action"]
    try:
        body = ActionRequest.model_validate_json(await request.body() or b"{}")
    except ValidationError as err:
        raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, str(err)) from err
    bus, who = bus_of(request), _who(request, body)
    results: list[dict[str, Any]] = []
    if action == "redrive":
        for seq in body.dead_letters:
            results.append(await _one(operator_actions.redrive_dead_letter, bus, seq, who, body))
        return JSONResponse({"ok": all(r.get("ok", True) for r in results), "results": results})
    agent_actions = {
        "reset": operator_actions.reset_agent,
        "restart": operator_actions.restart_agent,
        "pause": operator_actions.pause_agent,
        "resume": operator_actions.resume_agent,
    }
    evolution_actions = {
        "abort": operator_actions.abort_evolution,
        "rollback": operator_actions.roll_back,
    }
    if action not in agent_actions and action not in evolution_actions:
        raise InvalidRequestError(ErrorCode.MALFORMED_REQUEST, f"no action {action!r}")
    for agent in await _targets(request, body):
        if action in agent_actions:
            results.append(await _one(agent_actions[action], bus, agent, who, body))
        else:
            try:
                answer = await evolution_actions[action](bus.js, agent, who, body.reason)
                results.append({"ok": True, **answer})
            except OBusError as err:
                results.append({"ok": False, "agent": agent, "error": err.message})
    return JSONResponse({"ok": all(r.get("ok", True) for r in results), "results": results})


async def _one(function: Any, bus: Any, target: Any, who: str, body: ActionRequest) -> Any:
    try:
        answer: dict[str, Any] = await function(bus.nc, bus.js, target, who, body.reason)
    except OBusError as err:
        return {"ok": False, "target": target, "error": err.message}
    return {"ok": True, **answer}


routes = [Route("/api/actions/{action}", act, methods=["POST"])]
