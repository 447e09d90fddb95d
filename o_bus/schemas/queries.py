"""Schema files of the query path: the request and reply on ``o.qry.<agent>``, and the params
of each agent definition's queries."""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from o_bus.agent.definition import AgentDefinition
from o_bus.runtime.queries import QueryReply, QueryRequest
from o_bus.store import layout

from .build import document, require_all
from .paths import safe

__all__ = ["QUERY_REPLY", "QUERY_REQUEST", "query_asyncapi", "query_path", "query_schemas"]

QUERY_REQUEST: Final = "query-request.schema.json"
QUERY_REPLY: Final = "query-reply.schema.json"


def query_path(definition: str, query: str) -> str:
    return f"agents/{definition}/queries/{query}.schema.json"


def query_schemas(definitions: list[AgentDefinition[Any]]) -> dict[str, dict[str, Any]]:
    """The query request and reply files, and each definition's query params, by path."""
    reply = TypeAdapter(QueryReply).json_schema(mode="serialization")
    reply["oneOf"] = reply.pop("anyOf")
    require_all(reply)
    out = {
        QUERY_REQUEST: document(
            QUERY_REQUEST,
            QueryRequest.model_json_schema(mode="validation"),
            title="QueryRequest",
            description=(
                f"A read-only query, JSON request/reply on core NATS subject "
                f"{layout.QUERY_PREFIX}<agent> (not stored, not through the WAL). params are "
                "the query's own (see agents/<definition>/queries/)."
            ),
        ),
        QUERY_REPLY: document(
            QUERY_REPLY,
            reply,
            title="QueryReply",
            description=(
                "Reply to a query, JSON, sent to the request's reply inbox. Header O-Status is "
                "ok for QueryOkReply, error for QueryErrorReply."
            ),
        ),
    }
    for definition in definitions:
        name = safe(definition.name, "agent definition")
        for query, query_type in sorted(definition.queries.types.items()):
            path = query_path(name, safe(query, "query"))
            schema = query_type.model_json_schema(mode="validation")
            out[path] = document(
                path,
                schema,
                description=schema.get("description")
                or f"params of query {query!r} of agents of definition {name!r}.",
                extension={"definition": name, "query": query},
            )
    return out


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def query_asyncapi(
    definitions: list[AgentDefinition[Any]], agent: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The query path in the AsyncAPI document: (channels, operations, messages)."""
    messages: dict[str, Any] = {}
    for definition in definitions:
        for query in sorted(definition.queries.types):
            key = f"query.{definition.name}.{query}"
            messages[key] = {
                "name": key,
                "title": f"{definition.name}: query {query}",
                "summary": f"Query {query!r} to an agent of definition {definition.name!r}.",
                "contentType": "application/json",
                "payload": {
                    "type": "object",
                    "allOf": [
                        _ref(f"./{QUERY_REQUEST}"),
                        {
                            "properties": {
                                "query": {"const": query},
                                "params": _ref(f"./{query_path(definition.name, query)}"),
                            },
                            "required": ["query"],
                        },
                    ],
                },
            }
    messages["queryReply"] = {
        "name": "queryReply",
        "title": "Query reply",
        "summary": "QueryOkReply or QueryErrorReply; header O-Status says which.",
        "contentType": "application/json",
        "payload": _ref(f"./{QUERY_REPLY}"),
    }
    keys = [key for key in messages if key != "queryReply"]
    channels = {
        "query": {
            "address": layout.QUERY_PREFIX + "{agent}",
            "title": "Queries",
            "description": (
                "Read-only queries answered by the agent's active process: core NATS "
                "request/reply, not stored and not through the WAL. min_seq waits until the "
                "agent has applied that sequence (read your own writes)."
            ),
            "parameters": {"agent": agent},
            "messages": {key: _ref(f"#/components/messages/{key}") for key in keys},
        },
        "queryReply": {
            "address": None,
            "title": "Query reply inbox",
            "description": "The query request's reply inbox.",
            "messages": {"queryReply": _ref("#/components/messages/queryReply")},
        },
    }
    operations = {
        "handleQuery": {
            "action": "receive",
            "title": "Answer a query",
            "summary": "The agent reads its state or projections and replies; nothing changes.",
            "channel": _ref("#/channels/query"),
            "messages": [_ref(f"#/channels/query/messages/{key}") for key in keys],
            "reply": {
                "channel": _ref("#/channels/queryReply"),
                "messages": [_ref("#/channels/queryReply/messages/queryReply")],
            },
        }
    }
    return channels, operations, messages
