"""Schema files of message bodies built from pydantic models: the reply, agents, the system."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleChanged
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.store import layout
from o_bus.supervision.records import AgentSupervision, SystemEvent
from o_bus.wire.reply import Reply

from .build import document, require_all, serialized
from .paths import (
    AGENT_SUPERVISION,
    HEARTBEAT,
    LIFECYCLE_CHANGED,
    REPLY,
    SYSTEM_EVENT,
    command_path,
    event_path,
    safe,
    state_path,
)

__all__ = ["agent_schemas", "reply_schema", "system_schemas"]


def reply_schema() -> dict[str, Any]:
    schema = TypeAdapter(Reply).json_schema(mode="serialization")
    schema["oneOf"] = schema.pop("anyOf")
    require_all(schema)
    return document(
        REPLY,
        schema,
        title="Reply",
        description=(
            "Reply to a request, sent to the request's reply inbox in the request's encoding "
            "(JSON for structured mode). Header O-Status is ok for OkReply, error for ErrorReply."
        ),
    )


def system_schemas() -> dict[str, dict[str, Any]]:
    """The bus's own messages about agents, by path."""
    descriptions: dict[str, tuple[type[BaseModel], str]] = {
        LIFECYCLE_CHANGED: (
            LifecycleChanged,
            f"An agent's lifecycle transition, JSON on {layout.LIFECYCLE_PREFIX}<agent> in "
            f"stream {layout.SYSTEM_STREAM}.",
        ),
        SYSTEM_EVENT: (
            SystemEvent,
            f"A supervision event, JSON on {layout.SYSTEM_EVENT_PREFIX}<agent> in stream "
            f"{layout.SYSTEM_STREAM}, published by the supervisor. at is UTC (RFC 3339); pid "
            "is the process concerned, if any; restarts is the restart count on restart events "
            "(0 otherwise).",
        ),
        HEARTBEAT: (
            Heartbeat,
            f"A heartbeat of one agent process, JSON on core NATS subject "
            f"{layout.HEARTBEAT_PREFIX}<agent> (not stored), about 10 per second per process. "
            "Times are unix seconds; the counters belong to the process and start from zero "
            "with it.",
        ),
        AGENT_SUPERVISION: (
            AgentSupervision,
            f"The supervisor's record of one agent: the JSON value of key <agent> in KV bucket "
            f"{layout.SUPERVISOR_BUCKET}, rewritten on every change. Times are unix seconds.",
        ),
    }
    return {
        path: document(path, serialized(model), description=description)
        for path, (model, description) in descriptions.items()
    }


def agent_schemas(definition: AgentDefinition[Any]) -> dict[str, dict[str, Any]]:
    """The command, event and state schema files of one agent definition, by path."""
    name = safe(definition.name, "agent definition")
    out: dict[str, dict[str, Any]] = {}
    for command, command_type in sorted(definition.command_types.items()):
        path = command_path(name, safe(command, "command"))
        schema = command_type.model_json_schema(mode="validation")
        out[path] = document(
            path,
            schema,
            description=schema.get("description")
            or (
                f"Data of command {command!r} (ce-type) for agents of definition {name!r}: the "
                "request body in binary mode, data in structured mode."
            ),
            extension={"definition": name, "command": command},
        )
    for event_type, event_cls in sorted(definition.event_types.items()):
        path = event_path(name, safe(event_type, "event type"), event_cls.event_version)
        schema = serialized(event_cls)
        out[path] = document(
            path,
            schema,
            description=schema.get("description")
            or (
                f"Data of event {event_type!r} version {event_cls.event_version} of agents of "
                f"definition {name!r}: the body of an event on {layout.EVENT_PREFIX}<agent>."
            ),
            extension={
                "definition": name,
                "eventType": event_type,
                "eventVersion": event_cls.event_version,
            },
        )
    path = state_path(name)
    schema = serialized(definition.state_type)
    about = f" ({definition.description})" if definition.description else ""
    out[path] = document(
        path,
        schema,
        description=schema.get("description") or f"State of agents of definition {name!r}{about}.",
        extension={
            "definition": name,
            "definitionVersion": definition.version,
            "stateSchemaVersion": definition.state_schema_version,
        },
    )
    return out
