"""An agent's code at start: its registered definition and its route's live version, read
again while the store does not answer."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.errors import StorageError
from o_bus.evolution.live_code import CodeResolver, RouteFollower
from o_bus.evolution.registered import registered_definition
from o_bus.store.registry import Registry

__all__ = ["STORE_PATIENCE_TTLS", "agent_code_when_the_store_answers"]

log = logging.getLogger(__name__)

# An agent started while the store is away (a leader election takes up to ~10 s) waits this
# many lease TTLs for it before it counts as a crash.
STORE_PATIENCE_TTLS: Final = 6
STORE_RETRY_INTERVAL: Final = 0.25  # seconds


async def agent_code_when_the_store_answers(
    nc: Client,
    js: JetStreamContext,
    name: str,
    extra: list[str] | Catalogue | None,
    patience: float,
) -> tuple[RouteFollower, AgentDefinition[Any]]:
    """Agent ``name``'s registered code and its route's live version (``extra``: more
    definition specs, or the catalogue to look in), read again while the store does not
    answer (a server restarting, a leader being elected) for up to ``patience`` seconds: an
    agent started then is neither a crash nor code that cannot be loaded. Raises
    ``StorageError`` after that."""
    deadline = time.monotonic() + patience
    while True:
        try:
            record = await Registry(js).get(name)
            registered = await registered_definition(js, record, extra)
            routes = RouteFollower(nc, js, name, CodeResolver(js, name, registered))
            return routes, await routes.initial_definition()
        except (StorageError, nats.errors.Error) as err:
            if time.monotonic() >= deadline:
                raise StorageError(
                    f"agent {name}: the store did not answer for {patience:g} s: {err}"
                ) from err
            log.warning("agent %s: the store does not answer (%s); again", name, err)
            await asyncio.sleep(STORE_RETRY_INTERVAL)
