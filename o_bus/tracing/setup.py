"""The tracer of this process: None while tracing is off (then no tracing library is even
imported), else one built on first use from the environment (see :mod:`.settings`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from o_bus.errors import ConfigurationError

from .api import Tracer
from .settings import tracing_settings

__all__ = ["configure", "tracer"]

log = logging.getLogger(__name__)
_UNSET: Final = object()
_process: dict[str, object] = {"role": "process", "tracer": _UNSET}


def configure(role: str, environ: Mapping[str, str] | None = None) -> Tracer | None:
    """Set up this process's tracer for ``role`` (``splitter``, ``agent``, ``candidate``...);
    call once at process start, before the services ask :func:`tracer`."""
    previous = _process["tracer"]
    if previous is not _UNSET and previous is not None:
        previous.shutdown()  # type: ignore[attr-defined]
    _process["role"] = role
    _process["tracer"] = built = _build(role, environ)
    return built


def tracer() -> Tracer | None:
    """This process's tracer, or None: tracing is off."""
    found = _process["tracer"]
    if found is _UNSET:
        found = _process["tracer"] = _build(str(_process["role"]), None)
    return found  # type: ignore[return-value]


def _build(role: str, environ: Mapping[str, str] | None) -> Tracer | None:
    settings = tracing_settings(environ)
    if settings is None:
        return None
    try:
        from .otel import build_tracer
    except ImportError as err:
        log.warning(
            "tracing is configured but OpenTelemetry is not installed (%s): "
            "pip install 'o-bus[tracing]'. Tracing stays off.",
            err,
        )
        return None
    try:
        built = build_tracer(settings, role)
    except ConfigurationError as err:
        log.error("tracing stays off: %s", err.message)
        return None
    log.info("tracing on: %s as o-bus-%s", ", ".join(settings.exporters), role)
    return built
