"""Tracing in a candidate process: its shadow's spans are exported to the collector the
platform names. Inside the boundary's own network namespace the collector is reachable only
when the parent relays it (:mod:`o_bus.evolution.sandbox_relays`); without that relay it
exports nothing (and builds no exporter that could only fail)."""

from __future__ import annotations

import logging

from o_bus.evolution.boundary import access_from_env
from o_bus.evolution.sandbox import current_report
from o_bus.tracing import Tracer, configure, tracing_settings

__all__ = ["configure_candidate_tracing"]

log = logging.getLogger(__name__)


def configure_candidate_tracing() -> Tracer | None:
    """This candidate process's tracer, or None: tracing is off, or its network is isolated
    and no relay to the collector was given."""
    report = current_report()
    boundary = report.boundary if report is not None else None
    if boundary is not None and boundary.network and not access_from_env().relays:
        if tracing_settings() is not None:
            log.info("shadow spans are not exported: this sandbox's network reaches the bus only")
        return configure("candidate", {})
    return configure("candidate")
