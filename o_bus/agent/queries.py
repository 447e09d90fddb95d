"""Queries: read-only handlers over an agent's state and projections, answered on core NATS
(``o.qry.<agent>``) without going through the WAL.

Example::

    class Recall(Query):          # query name: "recall"
        text: str
        k: int = 5

    @memory.query
    async def recall(ctx: QueryContext[MemoryState], q: Recall) -> list[Hit]:
        return await ctx.projection(semantic).search(q.text, q.k)

A handler may be sync or async; it must not change anything. Its result is any value pydantic
can serialise to JSON (models, lists, dicts, scalars).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from o_bus.agent.context import DecisionContext, context_parameter
from o_bus.errors import (
    AgentUnavailableError,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
)
from o_bus.events.model import State, snake_case

__all__ = [
    "Projection",
    "ProjectionSpec",
    "Query",
    "QueryContext",
    "QueryHandler",
    "QueryTable",
]

S = TypeVar("S", bound=State)
P = TypeVar("P", bound="Projection")
P_co = TypeVar("P_co", bound="Projection", covariant=True)


class Query(BaseModel):
    """The parameters of a query. ``query_name`` defaults to the class name in snake_case."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    query_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("query_name"):
            cls.query_name = snake_case(cls.__name__)


class Projection(Protocol):
    """A running read model derived from the agent's log (for example the memory index)."""

    async def wait_for(self, seq: int, timeout: float) -> None:
        """Return once events up to agent sequence ``seq`` are applied, else raise
        ``AgentUnavailableError``."""
        ...

    async def close(self) -> None: ...


class ProjectionSpec(Protocol[P_co]):
    """Declared on an agent; opened by the runtime for each agent instance when it serves."""

    name: str

    async def open(self, nc: Any, js: Any, agent: str, definition: Any) -> P_co: ...


class QueryContext(Generic[S]):
    """What a query handler reads: the last durable state, its sequence, the projections."""

    __slots__ = ("_projections", "_unavailable", "agent", "seq", "state")

    def __init__(
        self,
        agent: str,
        state: S,
        seq: int,
        projections: dict[int, Projection],
        unavailable: dict[int, str] | None = None,
    ) -> None:
        self.agent, self.state, self.seq = agent, state, seq
        self._projections = projections
        self._unavailable = unavailable or {}

    def projection(self, spec: ProjectionSpec[P]) -> P:
        """The running projection declared by ``spec``; ``AgentUnavailableError`` (code
        ``unavailable``) with the reason if it could not be opened."""
        found = self._projections.get(id(spec))
        if found is not None:
            return found  # type: ignore[return-value]
        why = self._unavailable.get(id(spec))
        if why is not None:
            raise AgentUnavailableError(
                f"projection {spec.name!r} of agent {self.agent!r} is unavailable: {why}"
            )
        raise ConfigurationError(
            f"projection {spec.name!r} is not declared on agent {self.agent!r}"
        )


QueryHandler = Callable[[QueryContext[Any], Any], Any | Awaitable[Any]]


class QueryTable:
    """The queries of one agent definition, by name."""

    def __init__(self) -> None:
        # query name -> (query type, handler, name of its DecisionContext parameter)
        self._entries: dict[str, tuple[type[Query], Callable[..., Any], str | None]] = {}

    def register(self, query_type: type[Query], fn: Callable[..., Any]) -> None:
        if query_type.query_name in self._entries:
            raise ConfigurationError(f"query {query_type.query_name!r} registered twice")
        self._entries[query_type.query_name] = (query_type, fn, context_parameter(fn))

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def types(self) -> dict[str, type[Query]]:
        return {name: entry[0] for name, entry in self._entries.items()}

    def parse(self, agent: str, name: str, params: Any) -> Query:
        """Validate ``params`` into the query's model, or raise ``InvalidRequestError``."""
        try:
            query_type = self._entries[name][0]
        except KeyError:
            raise InvalidRequestError(
                ErrorCode.UNKNOWN_COMMAND,
                f"agent {agent!r} has no query {name!r}; known: {', '.join(sorted(self._entries))}",
            ) from None
        try:
            return query_type.model_validate({} if params is None else params)
        except ValidationError as err:
            errors = err.errors(include_url=False, include_context=False, include_input=False)
            details = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in errors[:20]
            ]
            summary = "; ".join(
                f"{'.'.join(d['loc']) or '(params)'}: {d['msg']}" for d in details[:5]
            )
            raise InvalidRequestError(
                ErrorCode.INVALID_PAYLOAD,
                f"invalid params for query {name!r}: {summary}",
                details={"errors": details},
            ) from err

    async def run(
        self, context: QueryContext[Any], query: Query, decision: DecisionContext | None = None
    ) -> Any:
        """Answer ``query``; ``decision`` (the query's id and arrival time) goes to a handler
        that declares a ``DecisionContext`` parameter."""
        _, handler, context_name = self._entries[query.query_name]
        if context_name is None:
            result = handler(context, query)
        elif decision is None:
            raise ConfigurationError(f"{handler.__qualname__} needs a decision context")
        else:
            result = handler(context, query, **{context_name: decision})
        if inspect.isawaitable(result):
            result = await result
        return result
