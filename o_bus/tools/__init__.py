"""Tools for agents: declared, validated, rate-limited, cached, retried, and recorded.

Handlers stay pure: they return :class:`ToolCallRequested` (``tools.call(state, name,
input)``); the tool runner executes the call and sends the result back through the agent's
request path, where it is recorded as :class:`ToolCallCompleted` and handed to the agent's
``@agent.on_tool_result(name)`` handler. Replay and shadows reuse recorded results.
"""

from o_bus.tools.binding import AgentTools
from o_bus.tools.http_tool import HttpRequest, HttpResult, http_tool
from o_bus.tools.records import (
    ToolCallCompleted,
    ToolCallRequested,
    ToolError,
    ToolResult,
    ToolResultCommand,
    ToolState,
)
from o_bus.tools.spec import RateLimit, Tool, ToolContext, ToolFailure, tool

__all__ = [
    "AgentTools",
    "HttpRequest",
    "HttpResult",
    "RateLimit",
    "Tool",
    "ToolCallCompleted",
    "ToolCallRequested",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolResult",
    "ToolResultCommand",
    "ToolState",
    "http_tool",
    "tool",
]
