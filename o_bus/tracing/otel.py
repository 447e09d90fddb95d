"""The tracer on the OpenTelemetry SDK (the ``o-bus[tracing]`` extra): spans batched in a
background thread and exported over OTLP. Imported only once tracing is configured."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from o_bus.errors import ConfigurationError
from o_bus.wire.trace_context import TraceParent, format_traceparent, parse_traceparent

from .api import AttributeValue, SpanKind
from .settings import TracingSettings

SAMPLER_ENV = "OTEL_TRACES_SAMPLER"  # read by the SDK's TracerProvider as well

__all__ = ["OtelSpan", "OtelTracer", "UnsampledSpan", "build_tracer"]

_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
}


class OtelSpan:
    __slots__ = ("_ended", "_span", "_traceparent")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._ended = False
        ctx = span.get_span_context()
        self._traceparent = format_traceparent(ctx.trace_id, ctx.span_id, ctx.trace_flags)

    @property
    def traceparent(self) -> str:
        return self._traceparent

    @property
    def tracestate(self) -> str | None:
        return self._span.get_span_context().trace_state.to_header() or None

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, message))

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end()


class UnsampledSpan:
    """The span of a request its caller did not sample, under a parent-based sampler: nothing
    is recorded, and the caller's context is carried on unchanged (a span object of the SDK
    would cost as much again as all the rest of the pass-through)."""

    __slots__ = ("_parent", "_state")

    def __init__(self, traceparent: str, tracestate: str | None) -> None:
        self._parent, self._state = traceparent, tracestate

    @property
    def traceparent(self) -> str:
        return self._parent

    @property
    def tracestate(self) -> str | None:
        return self._state

    def set(self, key: str, value: AttributeValue) -> None:
        return

    def fail(self, message: str) -> None:
        return

    def end(self) -> None:
        return


def _parent_context(parsed: TraceParent | None, tracestate: str | None) -> Context | None:
    if parsed is None:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    remote = SpanContext(
        int(parsed.trace_id, 16),
        int(parsed.parent_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(parsed.flags),
        trace_state=state,
    )
    return trace.set_span_in_context(NonRecordingSpan(remote))


class OtelTracer:
    def __init__(self, provider: TracerProvider, *, follows_parent: bool = True) -> None:
        self.provider = provider
        self.follows_parent = follows_parent  # the sampler keeps the parent's decision
        self._tracer = provider.get_tracer("o_bus")

    def start(
        self,
        name: str,
        parent: str | None = None,
        tracestate: str | None = None,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> OtelSpan | UnsampledSpan:
        parsed = parse_traceparent(parent) if parent else None
        if parsed is not None and not parsed.sampled and self.follows_parent:
            return UnsampledSpan(parent or "", tracestate)
        span = self._tracer.start_span(
            name,
            context=_parent_context(parsed, tracestate),
            kind=_KINDS[kind],
            attributes=attributes,
        )
        return OtelSpan(span)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _exporter(name: str, settings: TracingSettings) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as err:
            raise ConfigurationError(
                "OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; "
                "or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            ) from err
        exporter: SpanExporter = GrpcExporter(endpoint=settings.endpoint)
        return exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint)


def build_tracer(settings: TracingSettings, role: str) -> OtelTracer:
    """A tracer exporting with ``settings`` for a process of ``role`` (splitter, agent...).
    Its spans are flushed at interpreter exit."""
    attributes: dict[str, AttributeValue] = {
        "service.namespace": "o-bus",
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        "o_bus.role": role,
    }
    if settings.service_name is None:
        attributes["service.name"] = f"o-bus-{role}"
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in settings.exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, settings)))
    sampler = os.environ.get(SAMPLER_ENV, "parentbased_always_on")
    return OtelTracer(provider, follows_parent=sampler.startswith("parentbased_"))
