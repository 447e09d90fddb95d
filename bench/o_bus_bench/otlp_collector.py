"""A small OTLP/HTTP trace collector on 127.0.0.1: what the tracing benchmark exports to, and
what the tracing tests read their spans back from.

It decodes each ``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``, gzip or not) with
opentelemetry-proto and keeps the spans (or only counts them). ``pages`` are answered to ``GET``,
so one local server can also be the target of an agent's HTTP tool.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["OtlpCollector", "ReceivedSpan"]

TRACES_PATH: Final = "/v1/traces"
_PROTOBUF: Final = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span: ids as lowercase hex (``parent_id`` empty for a root)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    failed: bool = False


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _spans_of(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        service=service,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        failed=span.status.code == span.status.STATUS_CODE_ERROR,
                    )
                )
    return found


class OtlpCollector:
    """Receives traces on ``url`` (give it to OTEL_EXPORTER_OTLP_ENDPOINT) until stopped."""

    def __init__(self, *, keep: bool = True, pages: Mapping[str, bytes] | None = None) -> None:
        self.keep = keep
        self.pages = dict(pages or {})
        self.received = 0  # spans
        self.requests = 0  # export requests
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def _record(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            self.requests += 1
            if self.keep:
                spans = _spans_of(request)
                self._spans.extend(spans)
                self.received += len(spans)
            else:
                self.received += sum(
                    len(scope.spans)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != TRACES_PATH:
                    self._answer(404, b"", "text/plain")
                    return
                try:
                    collector._record(body)
                except ValueError:
                    self._answer(400, b"not an ExportTraceServiceRequest", "text/plain")
                    return
                self._answer(200, ExportTraceServiceResponse().SerializeToString(), _PROTOBUF)

            def do_GET(self) -> None:
                page = collector.pages.get(self.path)
                if page is None:
                    self._answer(404, b"", "text/plain")
                else:
                    self._answer(200, page, "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: one line per export would drown the output

        return Handler

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
