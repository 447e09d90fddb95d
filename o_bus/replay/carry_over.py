"""The state a new code version starts from when it takes over from an older one."""

from __future__ import annotations

from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConcurrencyError
from o_bus.events.model import State
from o_bus.replay.rebuild import rebuild
from o_bus.store.event_log import EventLog
from o_bus.store.snapshots import SnapshotStore

__all__ = ["carried_state"]


async def carried_state(
    old: AgentDefinition[Any],
    new: AgentDefinition[Any],
    state: State,
    seq: int,
    eventlog: EventLog,
    snapshots: SnapshotStore,
) -> State:
    """``state`` (old code's, durable at ``seq``) as ``new`` code's state.

    Same state schema, or migrations from the old one: the data is carried over. Otherwise
    the new code folds the whole history itself (from a snapshot it can read, if any)."""
    data = state.model_dump(mode="json")
    if old.state_schema_version == new.state_schema_version or (
        new.state_migrations.can_migrate(old.state_schema_version, new.state_schema_version)
    ):
        carried: State = new.state_from(data, old.state_schema_version)
        return carried
    rebuilt = await rebuild(new, eventlog, snapshots, at_seq=seq)
    if rebuilt.position.seq != seq:
        raise ConcurrencyError(eventlog.agent, seq, f"the log does not reach seq {seq}")
    return rebuilt.state
