"""Schema files of evolution's records: routes, evolutions, decisions, diffs, candidate stats."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.plan import Evolution
from o_bus.evolution.records import DiffRecord, EvolutionDecisionRecord
from o_bus.evolution.routes import Route, RouteChanged
from o_bus.store import layout

from .build import document, serialized
from .messages import ref

__all__ = [
    "EVOLUTION_ABOUT",
    "EVOLUTION_FILES",
    "evolution_asyncapi",
    "evolution_guide",
    "evolution_schemas",
]

ROUTE: Final = "evolution/route.schema.json"
ROUTE_CHANGED: Final = "evolution/route-changed.schema.json"
EVOLUTION: Final = "evolution/evolution.schema.json"
DECISION: Final = "evolution/decision.schema.json"
DIFF: Final = "evolution/diff.schema.json"
CANDIDATE_STATS: Final = "evolution/candidate-stats.schema.json"
EVOLUTION_FILES: Final = (ROUTE, ROUTE_CHANGED, EVOLUTION, DECISION, DIFF, CANDIDATE_STATS)


def evolution_schemas() -> dict[str, dict[str, Any]]:
    described: dict[str, tuple[type[BaseModel], str]] = {
        ROUTE: (
            Route,
            f"An agent's routes: the JSON value of key <agent> in KV bucket "
            f"{layout.ROUTES_BUCKET}. live is a code version digest (null: the registered "
            "definition); shadows see a copy of live traffic; canary decides weight percent "
            "of requests.",
        ),
        ROUTE_CHANGED: (
            RouteChanged,
            f"A change of an agent's routes, JSON on {layout.ROUTE_EVENT_PREFIX}<agent> in "
            f"stream {layout.SYSTEM_STREAM}: who, why, before and after.",
        ),
        EVOLUTION: (
            Evolution,
            f"An agent's evolution: the JSON value of key <agent> in KV bucket "
            f"{layout.EVOLUTION_BUCKET}, with its plan, stage, status and decisions.",
        ),
        DECISION: (
            EvolutionDecisionRecord,
            f"A decision of the evolution arbiter, JSON on "
            f"{layout.EVOLUTION_EVENT_PREFIX}<agent> in stream {layout.SYSTEM_STREAM}, with "
            "its reason and the figures it was based on.",
        ),
        DIFF: (
            DiffRecord,
            f"A mirrored request on which a candidate's output differed from live's, JSON on "
            f"{layout.DIFF_PREFIX}<agent> in stream {layout.DIFF_STREAM}.",
        ),
        CANDIDATE_STATS: (
            CandidateStats,
            f"Figures of a candidate process, JSON on core NATS subject "
            f"{layout.CANDIDATE_PREFIX}<agent>.<version16>.stats (not stored), about 5 per "
            "second. Shadow traffic only: never mixed with live metrics.",
        ),
    }
    return {
        path: document(path, serialized(model), description=description)
        for path, (model, description) in described.items()
    }


EVOLUTION_ABOUT: Final = {
    ROUTE: f"Value of a key in KV bucket `{layout.ROUTES_BUCKET}`.",
    ROUTE_CHANGED: f"Body of a route change on `{layout.ROUTE_EVENT_PREFIX}<agent>`.",
    EVOLUTION: f"Value of a key in KV bucket `{layout.EVOLUTION_BUCKET}`.",
    DECISION: f"Body of an arbiter decision on `{layout.EVOLUTION_EVENT_PREFIX}<agent>`.",
    DIFF: f"Body of a comparison on `{layout.DIFF_PREFIX}<agent>` in `{layout.DIFF_STREAM}`.",
    CANDIDATE_STATS: f"Body of candidate figures on `{layout.CANDIDATE_PREFIX}<agent>.*.stats`.",
}


def evolution_guide() -> list[str]:
    """The guide's section on evolution records."""
    return [
        "## Evolution",
        "",
        "New code versions of an agent are tried beside live before they serve (see the",
        "project README). What a client can read about it, in JSON:",
        "",
        f"- **Routes**: key `<agent>` of KV bucket `{layout.ROUTES_BUCKET}` holds a",
        f"  [`Route`]({ROUTE}); every change is a [`RouteChanged`]({ROUTE_CHANGED}) on",
        f"  `{layout.ROUTE_EVENT_PREFIX}<agent>` in `{layout.SYSTEM_STREAM}`.",
        f"- **Evolutions**: key `<agent>` of KV bucket `{layout.EVOLUTION_BUCKET}` holds an",
        f"  [`Evolution`]({EVOLUTION}); each arbiter decision is also an",
        f"  [`EvolutionDecisionRecord`]({DECISION}) on `{layout.EVOLUTION_EVENT_PREFIX}<agent>`.",
        f"- **Comparisons**: `{layout.DIFF_PREFIX}<agent>` in `{layout.DIFF_STREAM}`, one",
        f"  [`DiffRecord`]({DIFF}) per mirrored request whose candidate output differed from",
        "  live's, with both outputs and the differing fields.",
        f"- **Candidate figures**: core NATS `{layout.CANDIDATE_PREFIX}<agent>.<version16>.stats`",
        f"  (the digest's first 16 hex digits), not stored: [`CandidateStats`]({CANDIDATE_STATS}).",
        "  Shadow traffic is counted only here, never in live's heartbeats or health.",
    ]


# channel key -> (address, title, description, message key, schema file, stream or bucket)
_CHANNELS: Final = {
    "routes": (
        f"$KV.{layout.ROUTES_BUCKET}.{{agent}}",
        "Routes",
        f"KV bucket {layout.ROUTES_BUCKET}, key {{agent}}: live, shadow and canary code "
        "versions. Read with a key-value get or watch.",
        "route",
        ROUTE,
        f"KV_{layout.ROUTES_BUCKET}",
    ),
    "routeChanges": (
        layout.ROUTE_EVENT_PREFIX + "{agent}",
        "Route changes",
        f"Every change of an agent's routes, in JetStream stream {layout.SYSTEM_STREAM}.",
        "routeChanged",
        ROUTE_CHANGED,
        layout.SYSTEM_STREAM,
    ),
    "evolutions": (
        f"$KV.{layout.EVOLUTION_BUCKET}.{{agent}}",
        "Evolutions",
        f"KV bucket {layout.EVOLUTION_BUCKET}, key {{agent}}: the agent's latest evolution.",
        "evolution",
        EVOLUTION,
        f"KV_{layout.EVOLUTION_BUCKET}",
    ),
    "evolutionDecisions": (
        layout.EVOLUTION_EVENT_PREFIX + "{agent}",
        "Evolution decisions",
        f"The arbiter's decisions, in JetStream stream {layout.SYSTEM_STREAM}.",
        "evolutionDecision",
        DECISION,
        layout.SYSTEM_STREAM,
    ),
    "diffs": (
        layout.DIFF_PREFIX + "{agent}",
        "Comparisons",
        f"Mirrored requests where a candidate differed from live, in JetStream stream "
        f"{layout.DIFF_STREAM}.",
        "diff",
        DIFF,
        layout.DIFF_STREAM,
    ),
    "candidateStats": (
        layout.CANDIDATE_PREFIX + "{agent}.{version}.stats",
        "Candidate figures",
        "Core NATS, not stored: each candidate process's figures about 5 times a second. "
        "{version} is the first 16 hex digits of the code version's digest.",
        "candidateStats",
        CANDIDATE_STATS,
        None,
    ),
}


def evolution_asyncapi(
    agent: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Evolution's records in the AsyncAPI document: (channels, operations, messages)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel, (address, title, description, key, path, store) in _CHANNELS.items():
        parameters: dict[str, Any] = {"agent": agent}
        if "{version}" in address:
            parameters["version"] = {"description": "16 hex digits of the code version digest"}
        channels[channel] = {
            "address": address,
            "title": title,
            "description": description,
            "parameters": parameters,
            "messages": {key: ref(f"#/components/messages/{key}")},
        }
        if store is not None:
            channels[channel]["x-o-bus-stream"] = store
        messages[key] = {
            "name": key,
            "title": title,
            "summary": EVOLUTION_ABOUT[path],
            "contentType": "application/json",
            "payload": ref(f"./{path}"),
        }
        operations[f"publish{channel[0].upper()}{channel[1:]}"] = {
            "action": "send",
            "title": f"Publish {title.lower()}",
            "channel": ref(f"#/channels/{channel}"),
            "messages": [ref(f"#/channels/{channel}/messages/{key}")],
        }
    return channels, operations, messages
