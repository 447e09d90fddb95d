"""Tools for agents: declared, validated, rate-limited, cached, retried, and recorded.

Handlers stay pure: they return :class:`ToolCallRequested` (``tools.call(state, name,
input)``); the tool runner executes the call and sends the result back through the agent's
request path, where it is recorded as :class:`ToolCallCompleted` and handed to the agent's
``@agent.on_tool_result(name)`` handler. Replay and shadows reuse recorded results.

Built-in tools: :func:`http_tool`, :func:`kv_tool`, :func:`llm_tool` (off until configured) and
``o_bus.memory.search_tool.memory_search_tool``.
"""

from o_bus.tools.http_tool import HttpRequest, HttpResult, http_tool
from o_bus.tools.kv_tool import KvRequest, KvResult, kv_tool
from o_bus.tools.llm_tool import ChatModel, ChatReply, ChatRequest, OpenAICompatibleChat, llm_tool
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
    "ChatModel",
    "ChatReply",
    "ChatRequest",
    "HttpRequest",
    "HttpResult",
    "KvRequest",
    "KvResult",
    "OpenAICompatibleChat",
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
    "kv_tool",
    "llm_tool",
    "tool",
]
