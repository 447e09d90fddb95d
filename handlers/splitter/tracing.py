"""The splitter's spans: one per accepted request (``splitter.accept``), from its WAL append
to JetStream's acknowledgement of the record. Only built when tracing is on: otherwise the
splitter uses the plain :class:`WalWriter`, and a request's checked ``ce-traceparent`` goes
into the WAL record unchanged."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

from o_bus.tracing import Span, Tracer, tracer
from o_bus.tracing.names import AGENT, COMMAND, REQUEST_ID, SPLITTER_ACCEPT, WAL_SEQ
from o_bus.wire.headers import CE_TRACEPARENT, CE_TRACESTATE

from .wal_writer import AckProblem, Handler, StoredHandler, WalWriter

__all__ = ["TracedWalWriter", "wal_writer"]


def wal_writer(
    nc: Client, on_problem: Handler, *, on_stored: StoredHandler, max_pending: int
) -> WalWriter:
    """The splitter's WAL writer: traced when this process traces."""
    found = tracer()
    if found is None:
        return WalWriter(nc, on_problem, on_stored=on_stored, max_pending=max_pending)
    return TracedWalWriter(nc, on_problem, found, on_stored=on_stored, max_pending=max_pending)


class TracedWalWriter(WalWriter):
    """A WAL writer that traces each append of the splitter (its context is the splitter's
    ``(agent, request, reply inbox)``): the span's context replaces the request's in the WAL
    record, so the agent's spans are its children."""

    def __init__(
        self,
        nc: Client,
        on_problem: Handler,
        tracer: Tracer,
        *,
        on_stored: StoredHandler,
        max_pending: int,
    ) -> None:
        super().__init__(
            nc, self._on_traced_problem, on_stored=self._on_traced_stored, max_pending=max_pending
        )
        self._untraced_problem, self._untraced_stored = on_problem, on_stored
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

    def _on_traced_stored(self, context: tuple[Any, Span], wal_seq: int) -> None:
        untraced, span = context
        span.set(WAL_SEQ, wal_seq)
        span.end()
        self._untraced_stored(untraced, wal_seq)

    def _on_traced_problem(self, context: tuple[Any, Span], problem: AckProblem) -> None:
        untraced, span = context
        if problem.duplicate_of:
            span.set("o_bus.duplicate_of_wal_seq", problem.duplicate_of)
        else:
            span.fail(problem.error or "the WAL append failed")
        span.end()
        self._untraced_problem(untraced, problem)
