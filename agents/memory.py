"""Reference agent ``memory``: remember, forget and consolidate items; recall them by meaning.

Commands (through the WAL): ``remember {text, kind?, importance?, metadata?}``,
``forget {id}``, ``consolidate {now?}``, ``configure {capacity?, keep_recent?,
max_age_seconds?, min_importance?}``.
Queries (``o-bus query memory NAME``, not through the WAL): ``recall {text, k?, kinds?}``,
``recent {limit?}``, ``episodes {since?, until?, type?, limit?}``, ``stats {}``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from o_bus.agent.context import DecisionContext
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.queries import Query, QueryContext
from o_bus.errors import CommandRejected
from o_bus.events.model import Command, State
from o_bus.memory import (
    MAX_K,
    MAX_TEXT,
    Consolidated,
    ConsolidationRule,
    Episode,
    Forgotten,
    Hit,
    MemoryConfigured,
    MemoryItem,
    MemoryProjection,
    Remembered,
    ShortTermMemory,
    parse_time,
)
from o_bus.memory.index import MAX_EPISODES

__all__ = ["MemoryState", "memory", "semantic_memory"]

_ID = re.compile(r"^m([1-9][0-9]{0,17})$")


class MemoryState(State):
    short_term: ShortTermMemory = ShortTermMemory()
    rule: ConsolidationRule = ConsolidationRule()
    next_id: int = 1
    remembered: int = 0
    forgotten: int = 0
    consolidations: int = 0


# -- commands --------------------------------------------------------------------------------


class Remember(Command):
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="what to remember")
    kind: str = Field(default="note", min_length=1, max_length=64, pattern=r"^[\w.:-]+$")
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text


class Forget(Command):
    id: str = Field(min_length=1, max_length=128, description="an id returned by remember")


class Consolidate(Command):
    now: str | None = Field(default=None, description="ISO-8601 time to judge ages at")

    @field_validator("now")
    @classmethod
    def _time(cls, now: str | None) -> str | None:
        if now is not None:
            parsed = parse_time(now)  # ValueError: reported as invalid_payload
            if parsed.tzinfo is None:
                raise ValueError("now needs a timezone (for example a trailing Z)")
        return now


class Configure(Command):
    capacity: int | None = Field(default=None, ge=1, le=10_000)
    keep_recent: int | None = Field(default=None, ge=0, le=10_000)
    max_age_seconds: float | None = Field(default=None, gt=0)
    min_importance: float | None = Field(default=None, ge=0.0, le=1.0)


# -- queries ---------------------------------------------------------------------------------


class Recall(Query):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    k: int = Field(default=5, ge=1, le=MAX_K)
    kinds: list[str] | None = Field(default=None, max_length=32)


class Recent(Query):
    limit: int = Field(default=10, ge=1, le=10_000)


class Episodes(Query):
    since: str | None = None
    until: str | None = None
    type: str | None = Field(default=None, max_length=128)
    limit: int = Field(default=100, ge=1, le=MAX_EPISODES)


class Stats(Query):
    pass


semantic_memory = MemoryProjection()
memory: AgentDefinition[MemoryState] = AgentDefinition(
    "memory",
    state=MemoryState,
    version="1.0.0",
    description="Remembers text; recalls it by meaning; consolidates short into long term.",
)
memory.projection(semantic_memory)


@memory.command
def remember(state: MemoryState, cmd: Remember, ctx: DecisionContext) -> Remembered:
    item = MemoryItem(
        id=f"m{state.next_id}",
        text=cmd.text,
        kind=cmd.kind,
        importance=cmd.importance,
        metadata=cmd.metadata,
        at=ctx.timestamp,  # when the WAL accepted the request: the same on every replay
    )
    return Remembered(item=item, evicted=state.short_term.admit(state.rule))


@memory.command
def forget(state: MemoryState, cmd: Forget) -> Forgotten:
    match = _ID.match(cmd.id)
    if match is None or int(match.group(1)) >= state.next_id:
        raise CommandRejected(f"no memory item {cmd.id!r}")
    return Forgotten(id=cmd.id)


@memory.command
def consolidate(state: MemoryState, cmd: Consolidate, ctx: DecisionContext) -> Consolidated | None:
    at = cmd.now or ctx.timestamp
    evicted = state.short_term.consolidation(state.rule, parse_time(at))
    if not evicted.ids:
        return None
    return Consolidated(evicted=evicted, at=at)


@memory.command
def configure(state: MemoryState, cmd: Configure) -> MemoryConfigured:
    changes = cmd.model_dump(exclude_none=True)
    rule = state.rule.model_copy(update=changes)
    return MemoryConfigured(rule=rule, evicted=state.short_term.fit(rule))


@memory.applies
def apply_remembered(state: MemoryState, event: Remembered) -> MemoryState:
    return state.model_copy(
        update={
            "short_term": state.short_term.with_item(event.item, event.evicted),
            "next_id": state.next_id + 1,
            "remembered": state.remembered + 1,
        }
    )


@memory.applies
def apply_forgotten(state: MemoryState, event: Forgotten) -> MemoryState:
    return state.model_copy(
        update={
            "short_term": state.short_term.without(frozenset({event.id})),
            "forgotten": state.forgotten + 1,
        }
    )


@memory.applies
def apply_consolidated(state: MemoryState, event: Consolidated) -> MemoryState:
    return state.model_copy(
        update={
            "short_term": state.short_term.without(event.evicted.ids),
            "consolidations": state.consolidations + 1,
        }
    )


@memory.applies
def apply_configured(state: MemoryState, event: MemoryConfigured) -> MemoryState:
    return state.model_copy(
        update={"rule": event.rule, "short_term": state.short_term.without(event.evicted.ids)}
    )


@memory.query
async def recall(ctx: QueryContext[MemoryState], q: Recall) -> list[Hit]:
    return await ctx.projection(semantic_memory).search(q.text, q.k, kinds=q.kinds)


@memory.query
def recent(ctx: QueryContext[MemoryState], q: Recent) -> list[MemoryItem]:
    return list(reversed(ctx.state.short_term.items[-q.limit :]))


@memory.query
async def episodes(ctx: QueryContext[MemoryState], q: Episodes) -> list[Episode]:
    return await ctx.projection(semantic_memory).episodes(
        since=q.since, until=q.until, type=q.type, limit=q.limit
    )


@memory.query
async def stats(ctx: QueryContext[MemoryState], q: Stats) -> dict[str, Any]:
    state = ctx.state
    return {
        "remembered": state.remembered,
        "forgotten": state.forgotten,
        "consolidations": state.consolidations,
        "short_term_window": len(state.short_term.items),
        "rule": state.rule.model_dump(mode="json"),
        "index": await ctx.projection(semantic_memory).stats(),
    }
