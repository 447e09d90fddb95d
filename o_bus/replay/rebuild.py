"""Rebuild an agent's state: latest valid snapshot plus a streamed replay of the tail.

Used by agent recovery and by ``o-bus state --at``. A snapshot that fails to decode, verify,
validate, or match the log is logged and skipped: an older one or a full replay is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError, OBusError, SnapshotError
from o_bus.events.model import State
from o_bus.store.event_log import EventLog, LogPosition, StoredEvent
from o_bus.store.snapshots import Snapshot, SnapshotStore

__all__ = ["Rebuilt", "rebuild"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Rebuilt:
    state: State
    position: LogPosition
    snapshot: Snapshot | None
    replayed: int


class ReplayError(OBusError):
    """A stored event could not be applied: the history and the code disagree."""


async def _usable_snapshot(
    definition: AgentDefinition[Any],
    eventlog: EventLog,
    snapshots: SnapshotStore,
    at_seq: int | None,
) -> tuple[Snapshot, State] | None:
    for raw in await snapshots.candidates(eventlog.agent):
        try:
            snap = Snapshot.decode(raw)
            if snap.agent != eventlog.agent or snap.definition != definition.name:
                raise SnapshotError(f"snapshot belongs to {snap.agent!r}/{snap.definition!r}")
            if snap.state_schema_version != definition.state_schema_version and not (
                definition.state_migrations.can_migrate(
                    snap.state_schema_version, definition.state_schema_version
                )
            ):
                raise SnapshotError(
                    f"state schema v{snap.state_schema_version}, code expects "
                    f"v{definition.state_schema_version}"
                )
            if at_seq is not None and snap.seq > at_seq:
                continue
            if snap.seq == 0 and snap.stream_seq != 0:
                raise SnapshotError("snapshot at seq 0 claims a position inside the log")
            if snap.seq > 0:
                anchor = await eventlog.event_at_stream_seq(snap.stream_seq)
                if anchor is None or anchor.seq != snap.seq:
                    raise SnapshotError(
                        f"snapshot position (seq {snap.seq} at stream seq {snap.stream_seq}) "
                        "is not in the event log"
                    )
            state = definition.state_from(snap.state, snap.state_schema_version)
        except (SnapshotError, ConfigurationError) as err:
            log.warning("skipping a snapshot of %s: %s", eventlog.agent, err.message)
            continue
        assert isinstance(state, State)
        return snap, state
    return None


async def rebuild(
    definition: AgentDefinition[Any],
    eventlog: EventLog,
    snapshots: SnapshotStore | None,
    *,
    at_seq: int | None = None,
    at_time: str | None = None,
    progress: Callable[[int], None] | None = None,
    resume_from: Rebuilt | None = None,
) -> Rebuilt:
    """State after event ``at_seq`` (or the last event at or before ``at_time``, or the end).

    ``resume_from`` continues from an earlier result (a standby catching up) instead of a
    snapshot or the start."""
    state: State = definition.initial_state()
    position = LogPosition()
    snapshot = None
    if resume_from is not None:
        state, position, snapshot = resume_from.state, resume_from.position, resume_from.snapshot
    elif snapshots is not None and at_time is None:
        found = await _usable_snapshot(definition, eventlog, snapshots, at_seq)
        if found:
            snapshot, state = found
            position = LogPosition(snapshot.seq, snapshot.stream_seq, snapshot.wal_seq)
    if at_seq is not None and position.seq >= at_seq:
        return Rebuilt(state, position, snapshot, 0)

    box: dict[str, Any] = {"state": state, "position": position, "n": 0}
    decode, apply = definition.decode_event, definition.apply

    def on_event(event: StoredEvent) -> bool:
        if at_time is not None and event.time > at_time:
            return True
        try:
            box["state"] = apply(box["state"], decode(event.type, event.version, event.data))
        except Exception as err:
            raise ReplayError(
                f"cannot apply {event.type!r} v{event.version} at seq {event.seq} of "
                f"{event.agent!r}: {err}"
            ) from err
        box["position"] = LogPosition(
            event.seq, event.stream_seq, max(event.wal_seq, box["position"].wal_seq)
        )
        box["n"] += 1
        if progress is not None and box["n"] % 10_000 == 0:
            progress(box["n"])
        return at_seq is not None and event.seq >= at_seq

    await eventlog.replay(on_event, after_stream_seq=position.stream_seq)
    return Rebuilt(box["state"], box["position"], snapshot, box["n"])
