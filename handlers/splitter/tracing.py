"""The splitter's spans: one per accepted request (``splitter.accept``), from its admission to
JetStream's acknowledgement of its WAL record. Only built when tracing is on: otherwise the
splitter uses the plain :class:`WalWriter`, and a request's checked ``ce-traceparent`` goes
into the WAL record unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from o_bus.tracing import Span, Tracer, tracer
from o_bus.tracing.names import AGENT, COMMAND, REQUEST_ID, SPLITTER_ACCEPT, WAL_SEQ
from o_bus.wire.cloudevents import RequestEnvelope
from o_bus.wire.headers import CE_TRACEPARENT, CE_TRACESTATE

from .wal_writer import AckProblem, WalWriter

__all__ = ["TracedWalWriter", "wal_writer"]

Context = tuple[str, RequestEnvelope, str]  # (agent, request, reply inbox): the splitter's
ProblemHandler = Callable[[Any, AckProblem], None]
StoredHandler = Callable[[Any, int], None]


def wal_writer(
    nc: Client,
    on_problem: ProblemHandler,
    *,
    on_stored: StoredHandler | None = None,
    max_pending: int = 8192,
) -> WalWriter:
    """The splitter's WAL writer: traced when this process traces."""
    found = tracer()
    stored = on_stored or _ignore
    if found is None:
        return WalWriter(nc, on_problem, on_stored=stored, max_pending=max_pending)
    return TracedWalWriter(nc, on_problem, found, on_stored=stored, max_pending=max_pending)


def _ignore(context: Any, seq: int) -> None:
    return None


class TracedWalWriter(WalWriter):
    """A WAL writer that traces each append of the splitter: the span's context replaces the
    request's in the WAL record, so the agent's spans are its children."""

    def __init__(
        self,
        nc: Client,
        on_problem: ProblemHandler,
        tracer: Tracer,
        *,
        on_stored: StoredHandler = _ignore,
        max_pending: int = 8192,
    ) -> None:
        super().__init__(
            nc, self._on_traced_problem, on_stored=self._on_traced_stored, max_pending=max_pending
        )
        self._on_untraced_problem = on_problem
        self._on_untraced_stored = on_stored
        self.tracer = tracer

    async def append(
        self, subject: str, body: bytes, headers: dict[str, str], context: Any
    ) -> None:
        agent, envelope, _ = context
        span = self.tracer.start(
            SPLITTER_ACCEPT,
            envelope.traceparent,
            envelope.tracestate,
            kind="server",
            attributes={
                AGENT: agent,
                REQUEST_ID: envelope.id,
                COMMAND: envelope.type,
                "messaging.system": "nats",
                "messaging.destination.name": subject,
            },
        )
        headers[CE_TRACEPARENT] = span.traceparent
        tracestate = span.tracestate
        if tracestate:
            headers[CE_TRACESTATE] = tracestate
        await super().append(subject, body, headers, (context, span))

    def _on_traced_stored(self, context: tuple[Context, Span], seq: int) -> None:
        untraced, span = context
        span.set(WAL_SEQ, seq)
        span.end()
        self._on_untraced_stored(untraced, seq)

    def _on_traced_problem(self, context: tuple[Context, Span], problem: AckProblem) -> None:
        untraced, span = context
        if problem.duplicate_of:
            span.set("o_bus.duplicate_of_wal_seq", problem.duplicate_of)
        else:
            span.fail(problem.error or "the WAL append failed")
        span.end()
        self._on_untraced_problem(untraced, problem)
