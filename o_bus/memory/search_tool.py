"""Built-in tool ``memory_search``: semantic recall from a memory agent, over the query path.

It asks the memory agent (``memory`` by default) the read-only ``recall`` query on
``o.qry.<agent>``, so it works from any process and never goes through the WAL. Hits come back
best first, as :class:`o_bus.memory.Hit`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import AgentUnavailableError, ErrorCode
from o_bus.memory import MAX_K, MAX_TEXT, Hit
from o_bus.requests import query
from o_bus.tools.spec import Tool, ToolContext, ToolFailure

__all__ = ["MemorySearch", "MemorySearchResult", "memory_search_tool"]


class MemorySearch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(5, ge=1, le=MAX_K)
    kinds: list[str] | None = Field(None, max_length=32)


class MemorySearchResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    hits: list[Hit]


def memory_search_tool(
    name: str = "memory_search", *, memory_agent: str = "memory", **policy: Any
) -> Tool:
    """The memory search tool over agent ``memory_agent``'s ``recall`` query."""

    async def run(request: MemorySearch, ctx: ToolContext) -> MemorySearchResult:
        params = request.model_dump(exclude_none=True)
        try:
            reply = await query(ctx.nc, memory_agent, "recall", params, timeout=5.0)
        except AgentUnavailableError as err:
            raise ToolFailure(err.message, retryable=True) from err
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise ToolFailure(
                f"memory agent {memory_agent!r} refused the search: {error.get('message')}",
                retryable=error.get("code") == ErrorCode.UNAVAILABLE,
            )
        return MemorySearchResult.model_validate({"hits": reply.get("result") or []})

    policy.setdefault("description", "semantic search in a memory agent, best hits first")
    return Tool(name, MemorySearch, MemorySearchResult, run, **policy)
