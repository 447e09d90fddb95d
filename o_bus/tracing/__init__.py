"""Tracing: W3C trace context through the request path, exported with OpenTelemetry when
configured (see docs/tracing.md). With tracing off, :func:`tracer` is None and callers do
nothing but carry the ``ce-traceparent`` header along."""

from __future__ import annotations

from .api import AttributeValue, Span, SpanKind, Tracer
from .settings import TracingSettings, otlp_environment, tracing_settings
from .setup import configure, tracer

__all__ = [
    "AttributeValue",
    "Span",
    "SpanKind",
    "Tracer",
    "TracingSettings",
    "configure",
    "otlp_environment",
    "tracer",
    "tracing_settings",
]
