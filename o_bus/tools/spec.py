"""Declaring a tool: a name, input and output models, an async function, and its policy.

Example::

    class Lookup(BaseModel):
        key: str

    class Found(BaseModel):
        value: str | None

    @tool("lookup", input=Lookup, output=Found, timeout=2.0, retries=2, cache_ttl=30.0)
    async def lookup(request: Lookup, ctx: ToolContext) -> Found:
        ...

The function runs in the tool runner, never inside a handler, so it may do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import BaseModel

from o_bus.errors import ConfigurationError, OBusError
from o_bus.tools.records import ToolErrorCode

__all__ = ["RateLimit", "Tool", "ToolContext", "ToolFailure", "ToolFunction", "tool"]

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ToolFailure(OBusError):
    """Raised by a tool: the call failed. ``retryable`` says whether another attempt may help."""

    def __init__(
        self, message: str, *, code: ToolErrorCode = "tool_failed", retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.tool_code: ToolErrorCode = code
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool may use: the bus connection, the agent it works for, and the id of
    the call (the same on every attempt and after a restart: an idempotency key for side
    effects, together with the agent's name)."""

    nc: Client
    js: JetStreamContext
    agent: str
    call_id: str = ""


ToolFunction = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` calls a second on average, ``burst`` at once (token bucket)."""

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ConfigurationError("a rate limit needs per_second > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class Tool:
    """A declared tool and how the runner calls it.

    ``timeout`` bounds each attempt; a failed attempt that is retryable (timeouts, and failures
    the tool marks retryable) is tried again up to ``retries`` times, after ``backoff`` seconds
    doubling each time up to ``backoff_max``, each delay varied by up to ``jitter`` of itself.
    ``rate_limit`` applies to every attempt; ``cache_ttl`` > 0 reuses a successful output for
    the same input for that many seconds. Outputs larger than ``max_output_bytes`` (as JSON)
    are recorded as an ``output_too_large`` error.
    """

    name: str
    input: type[BaseModel]
    output: type[BaseModel]
    run: ToolFunction = field(repr=False)
    timeout: float = 10.0
    retries: int = 0
    backoff: float = 0.2
    backoff_max: float = 10.0
    jitter: float = 0.1
    rate_limit: RateLimit | None = None
    cache_ttl: float = 0.0
    max_output_bytes: int = 64 * 1024
    description: str = ""

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ConfigurationError(
                f"invalid tool name {self.name!r}: use 1-64 of a-z 0-9 _, starting with a letter"
            )
        for model in (self.input, self.output):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ConfigurationError(f"tool {self.name!r}: input and output must be models")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0 or self.cache_ttl < 0:
            raise ConfigurationError(
                f"tool {self.name!r}: timeout must be > 0; retries, backoff, cache_ttl >= 0"
            )
        if not 0 <= self.jitter < 1 or self.max_output_bytes < 1:
            raise ConfigurationError(
                f"tool {self.name!r}: jitter must be in [0, 1), max_output_bytes >= 1"
            )

    def configured(self, **changes: Any) -> Tool:
        """A copy with other settings, e.g. ``http.configured(name="fetch", timeout=1.0)``."""
        return replace(self, **changes)

    def delay_before(self, attempt: int, unit_random: float) -> float:
        """Seconds to wait before ``attempt`` (2, 3, ...); ``unit_random`` in [0, 1)."""
        base: float = min(self.backoff * 2.0 ** (attempt - 2), self.backoff_max)
        return base * (1 - self.jitter + 2 * self.jitter * unit_random)


def tool(
    name: str, *, input: type[BaseModel], output: type[BaseModel], **policy: Any
) -> Callable[[ToolFunction], Tool]:
    """Declare ``async def fn(input, ctx) -> output`` as a :class:`Tool` (see its fields)."""

    def declare(fn: ToolFunction) -> Tool:
        return Tool(name, input, output, fn, **policy)

    return declare
