"""What the bus needs of a tracer, without naming a tracing library: callers hold a
``Tracer | None`` (None: tracing is off, and nothing else is done)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

__all__ = ["AttributeValue", "Span", "SpanKind", "Tracer"]

AttributeValue = str | int | float | bool
SpanKind = Literal["internal", "server", "client", "producer", "consumer"]


class Span(Protocol):
    """A started span: its W3C trace context (to carry on), attributes, an error, its end."""

    @property
    def traceparent(self) -> str: ...

    @property
    def tracestate(self) -> str | None: ...

    def set(self, key: str, value: AttributeValue) -> None: ...

    def fail(self, message: str) -> None:
        """Mark the span as failed (status error) with ``message``."""

    def end(self) -> None:
        """End the span (once; later calls do nothing)."""


class Tracer(Protocol):
    def start(
        self,
        name: str,
        parent: str | None = None,
        tracestate: str | None = None,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        """Start span ``name`` as a child of the ``parent`` traceparent (a valid one: else,
        or when None, the root of a new trace)."""

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is pending; False if that took longer than ``timeout`` seconds."""

    def shutdown(self) -> None: ...
