"""Services a sandboxed child may reach besides the bus: today the OTLP collector its spans go to.

A child in its own network namespace cannot reach a collector on the host, so a platform with
tracing on would lose every span of its shadows and evaluations. When the child's environment
names an OTLP endpoint, the parent relays that one address (a :class:`BusBroker` to it) and the
child's endpoint variables name ``127.0.0.1:<the same port>``, which the boundary forwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from o_bus.evolution.boundary import Relay
from o_bus.evolution.bus_broker import BusBroker
from o_bus.tracing import tracing_settings
from o_bus.tracing.settings import ENDPOINT_ENV, TRACES_ENDPOINT_ENV

__all__ = ["start_relays"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1")


async def start_relays(
    env: Mapping[str, str], owner: int | None
) -> tuple[list[BusBroker], list[Relay], dict[str, str]]:
    """Brokers started for the services ``env`` names, the relays the child is given, and the
    environment variables rewritten to reach them from inside."""
    settings = tracing_settings(env)
    if settings is None or "otlp" not in settings.exporters or not settings.endpoint:
        return [], [], {}
    broker = await BusBroker(settings.endpoint, owner=owner).start()
    rewritten = {
        name: _inside(env[name], broker.port)
        for name in (ENDPOINT_ENV, TRACES_ENDPOINT_ENV)
        if env.get(name)
    }
    return [broker], [Relay(socket=str(broker.path), port=broker.port)], rewritten


def _inside(url: str, port: int) -> str:
    """``url`` with its host replaced by the loopback address the boundary forwards."""
    parts = urlsplit(url)
    host = parts.hostname if parts.hostname in _LOOPBACK_NAMES else "127.0.0.1"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, ""))
