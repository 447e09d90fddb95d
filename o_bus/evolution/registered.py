"""The definition an agent was registered with: its stored code version, or installed code."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.definition import AgentDefinition
from o_bus.store.registry import AgentRecord

__all__ = ["registered_definition"]


async def registered_definition(
    js: JetStreamContext, record: AgentRecord, extra: list[str] | Catalogue | None = None
) -> AgentDefinition[Any]:
    """The definition ``record`` was registered with: its stored code version when it has
    one, else the installed definition of that name (``extra``: more definition specs, or
    the catalogue to look in)."""
    if record.code is not None:
        # Imported here: an agent process running installed code never needs the store.
        from o_bus.evolution.code_store import CodeStore, default_cache_dir

        return await CodeStore(js, default_cache_dir()).load(record.name, record.code)
    catalogue = extra if isinstance(extra, Catalogue) else Catalogue.discover(extra)
    return catalogue.get(record.definition)
