"""Registering the installed agent definitions as agents in the registry."""

from __future__ import annotations

from nats.js import JetStreamContext

from o_bus.agent.catalogue import Catalogue
from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.registry import AgentRecord, Registry
from o_bus.supervision.records import SupervisionPolicy

__all__ = ["register_definitions"]


async def register_definitions(
    js: JetStreamContext, catalogue: Catalogue, policy: SupervisionPolicy | None = None
) -> list[str]:
    """Register one agent per installed definition (same name), keeping existing ones.

    ``policy`` (when given) replaces the supervision policy of these agents."""
    registry = Registry(js)
    existing = {record.name: record for record in await registry.all()}
    for name in catalogue.names():
        definition = catalogue.get(name)
        commands = sorted(definition.command_types)
        current = existing.get(name)
        wanted = policy or (current.supervision if current else SupervisionPolicy())
        await ensure_agent_stream(js, name)
        if current is None or current.commands != commands or current.supervision != wanted:
            await registry.register(
                AgentRecord(
                    name=name,
                    definition=name,
                    commands=commands,
                    created_at=current.created_at if current else utc_now(),
                    forked_from=current.forked_from if current else None,
                    supervision=wanted,
                )
            )
    return catalogue.names()
