"""The agent worker's spans, made only when tracing is on: ``agent.decide`` for each WAL
record (a child of the splitter's span), and ``agent.commit`` from staging its outcome until
it is durable and replied to. The decide span's context goes into the events the decision
produces, so whatever follows an event (a tool call) continues the same trace."""

from __future__ import annotations

from collections import deque

from o_bus.decision.decider import Verdict
from o_bus.tracing import Span, Tracer
from o_bus.tracing.names import (
    AGENT,
    AGENT_COMMIT,
    AGENT_DECIDE,
    COMMAND,
    OUTCOME,
    REQUEST_ID,
    WAL_SEQ,
)
from o_bus.wire.wal_record import WalRecord

__all__ = ["WorkerTracing"]


class WorkerTracing:
    """Spans of one agent's worker; commit spans end in WAL order, as batches commit."""

    def __init__(self, tracer: Tracer, agent: str) -> None:
        self.tracer, self.agent = tracer, agent
        self._committing: deque[tuple[int, Span]] = deque()

    def deciding(self, request: WalRecord) -> tuple[WalRecord, Span]:
        """Start the decide span of ``request``; the record now carries the span's context."""
        span = self.tracer.start(
            AGENT_DECIDE,
            request.traceparent,
            request.tracestate,
            kind="consumer",
            attributes={
                AGENT: self.agent,
                REQUEST_ID: request.request_id,
                COMMAND: request.command,
                WAL_SEQ: request.wal_seq,
            },
        )
        return request._replace(traceparent=span.traceparent), span

    def decided(self, span: Span, verdict: Verdict, wal_seq: int) -> None:
        """End the decide span with the verdict; start the commit span of its records."""
        span.set(OUTCOME, verdict.outcome)
        if verdict.error is not None:
            span.fail(verdict.error.message)
        span.end()
        commit = self.tracer.start(
            AGENT_COMMIT,
            span.traceparent,
            span.tracestate,
            attributes={AGENT: self.agent, WAL_SEQ: wal_seq, "o_bus.records": len(verdict.records)},
        )
        self._committing.append((wal_seq, commit))

    def committed(self, wal_seq: int) -> None:
        """Everything up to WAL sequence ``wal_seq`` is durable and replied to."""
        committing = self._committing
        while committing and committing[0][0] <= wal_seq:
            committing.popleft()[1].end()

    def abandon(self, reason: str) -> None:
        """End the open commit spans as failed (the worker stops without committing them)."""
        while self._committing:
            span = self._committing.popleft()[1]
            span.fail(reason)
            span.end()
