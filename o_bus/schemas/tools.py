"""Schema files of the tool framework's records: what any agent that calls tools writes and
accepts, whatever its definition (see the README's Tools section)."""

from __future__ import annotations

from typing import Any, Final

from o_bus.store import layout
from o_bus.tools.records import (
    RESULT_COMMAND,
    ToolCallCompleted,
    ToolCallRequested,
    ToolResultCommand,
)

from .build import document, serialized
from .messages import ref

__all__ = ["TOOLS_ABOUT", "TOOLS_FILES", "tools_asyncapi_messages", "tools_schemas"]

REQUESTED: Final = (
    f"tools/{ToolCallRequested.event_type}.v{ToolCallRequested.event_version}.schema.json"
)
COMPLETED: Final = (
    f"tools/{ToolCallCompleted.event_type}.v{ToolCallCompleted.event_version}.schema.json"
)
RESULT: Final = f"tools/{RESULT_COMMAND}.command.schema.json"
TOOLS_FILES: Final = (REQUESTED, COMPLETED, RESULT)

TOOLS_ABOUT: Final = {
    REQUESTED: f"Data of event `{ToolCallRequested.event_type}` of any agent that calls tools.",
    COMPLETED: f"Data of event `{ToolCallCompleted.event_type}`: a tool call's recorded result.",
    RESULT: f"Data of command `{RESULT_COMMAND}`, sent by the tool runner.",
}


def tools_schemas() -> dict[str, dict[str, Any]]:
    return {
        REQUESTED: document(
            REQUESTED,
            serialized(ToolCallRequested),
            description=(
                f"A handler asked for a tool call: an event on {layout.EVENT_PREFIX}<agent> of "
                "any agent that calls tools. input is already valid for the tool."
            ),
        ),
        COMPLETED: document(
            COMPLETED,
            serialized(ToolCallCompleted),
            description=(
                f"The recorded result of a tool call, an event on {layout.EVENT_PREFIX}<agent>: "
                "output when ok, else the error of the last attempt. Replay and shadows reuse "
                "it; the tool is never called again."
            ),
        ),
        RESULT: document(
            RESULT,
            ToolResultCommand.model_json_schema(mode="validation"),
            description=(
                f"Data of command {RESULT_COMMAND!r} on {layout.REQUEST_PREFIX}<agent>, sent by "
                "the agent's tool runner with ce-id tool-result:<call_id>. Clients do not send it."
            ),
        ),
    }


def tools_asyncapi_messages() -> dict[str, Any]:
    """Components for the tool records (events on the events channel, a command on requests)."""
    return {
        f"tools.{key}": {
            "name": f"tools.{key}",
            "title": title,
            "summary": TOOLS_ABOUT[path],
            "contentType": "application/json",
            "payload": ref(f"./{path}"),
        }
        for key, title, path in (
            ("toolCallRequested", "Tool call requested", REQUESTED),
            ("toolCallCompleted", "Tool call completed", COMPLETED),
            ("toolResult", "Tool result (command)", RESULT),
        )
    }
