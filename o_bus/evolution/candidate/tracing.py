"""Tracing in a candidate process: its shadow's spans are exported when the sandbox lets it
reach the collector. Inside the boundary's own network namespace it reaches only the bus, so
it exports nothing (and builds no exporter that could only fail)."""

from __future__ import annotations

import logging

from o_bus.evolution.sandbox import current_report
from o_bus.tracing import Tracer, configure, tracing_settings

__all__ = ["configure_candidate_tracing"]

log = logging.getLogger(__name__)


def configure_candidate_tracing() -> Tracer | None:
    """This candidate process's tracer, or None: tracing is off or its network is isolated."""
    report = current_report()
    boundary = report.boundary if report is not None else None
    if boundary is not None and boundary.network:
        if tracing_settings() is not None:
            log.info("shadow spans are not exported: this sandbox's network reaches the bus only")
        return configure("candidate", {})
    return configure("candidate")
