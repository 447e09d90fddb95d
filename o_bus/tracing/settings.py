"""When tracing is on, and where spans go: read from the standard OpenTelemetry variables.

Off unless configured: ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``), or
an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``, which is
what ``o-bus up --otlp URL`` sets for every process it starts). ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn it off. Reading these needs no tracing library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ENDPOINT_ENV",
    "EXPORTERS",
    "EXPORTER_ENV",
    "TRACES_ENDPOINT_ENV",
    "TracingSettings",
    "otlp_environment",
    "tracing_settings",
]

log = logging.getLogger(__name__)

EXPORTER_ENV: Final = "OTEL_TRACES_EXPORTER"
ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_PROTOCOL_ENVS: Final = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_DISABLED_ENV: Final = "OTEL_SDK_DISABLED"
_SERVICE_NAME_ENV: Final = "OTEL_SERVICE_NAME"
EXPORTERS: Final = ("otlp", "console")
_TRACES_PATH: Final = "/v1/traces"
PROTOCOLS: Final = ("http/protobuf", "grpc")


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Tracing is on: the exporters to use, the OTLP protocol, the service name if set."""

    exporters: tuple[str, ...]
    protocol: str = "http/protobuf"
    endpoint: str | None = None  # given to the exporter; None: its default (localhost)
    service_name: str | None = None  # OTEL_SERVICE_NAME; else o-bus-<role>


def tracing_settings(environ: Mapping[str, str] | None = None) -> TracingSettings | None:
    """The settings in ``environ`` (default ``os.environ``), or None: tracing is off."""
    env = os.environ if environ is None else environ
    if env.get(_DISABLED_ENV, "").strip().lower() == "true":
        return None
    endpoint = env.get(TRACES_ENDPOINT_ENV) or env.get(ENDPOINT_ENV) or None
    named = [e.strip().lower() for e in env.get(EXPORTER_ENV, "").split(",") if e.strip()]
    if not named:
        exporters: tuple[str, ...] = ("otlp",) if endpoint else ()
    else:
        unknown = [e for e in named if e not in (*EXPORTERS, "none")]
        if unknown:
            log.warning("%s: unknown exporter(s) %s ignored", EXPORTER_ENV, ", ".join(unknown))
        exporters = tuple(e for e in named if e in EXPORTERS)
    if not exporters:
        return None
    protocol = next((env[name] for name in _PROTOCOL_ENVS if env.get(name)), "http/protobuf")
    if protocol not in PROTOCOLS:
        log.warning("OTLP protocol %r is not supported; using http/protobuf", protocol)
        protocol = "http/protobuf"
    signal_endpoint = env.get(TRACES_ENDPOINT_ENV) or None
    if signal_endpoint is None and endpoint and protocol == "http/protobuf":
        signal_endpoint = endpoint.rstrip("/") + _TRACES_PATH  # the spec's rule for HTTP
    elif signal_endpoint is None:
        signal_endpoint = endpoint
    return TracingSettings(exporters, protocol, signal_endpoint, env.get(_SERVICE_NAME_ENV) or None)


def otlp_environment(url: str) -> dict[str, str]:
    """The variables that send every process's spans to the OTLP/HTTP collector at ``url``
    (what ``o-bus up --otlp URL`` adds to its children's environment)."""
    return {ENDPOINT_ENV: url.rstrip("/"), EXPORTER_ENV: "otlp"}
