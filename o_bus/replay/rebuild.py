"""Rebuild an agent's state from JetStream: latest valid snapshot plus a streamed replay of
the tail.

Used by agent recovery and by ``o-bus state --at``. A snapshot that fails to decode, verify,
validate, or match the log is logged and skipped: an older one or a full replay is used. The
checks and the fold are :mod:`o_bus.replay.fold`, shared with the offline replayer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError, SnapshotError
from o_bus.events.model import State
from o_bus.replay.fold import EventFold, Rebuilt, ReplayError, snapshot_state
from o_bus.store.event_log import EventLog, LogPosition
from o_bus.store.snapshots import Snapshot, SnapshotStore

__all__ = ["Rebuilt", "ReplayError", "rebuild"]

log = logging.getLogger(__name__)


async def _usable_snapshot(
    definition: AgentDefinition[Any],
    eventlog: EventLog,
    snapshots: SnapshotStore,
    at_seq: int | None,
) -> tuple[Snapshot, State] | None:
    for raw in await snapshots.candidates(eventlog.agent):
        try:
            snap, state = snapshot_state(definition, eventlog.agent, raw)
            if at_seq is not None and snap.seq > at_seq:
                continue
            if snap.seq > 0:
                anchor = await eventlog.event_at_stream_seq(snap.stream_seq)
                if anchor is None or anchor.seq != snap.seq:
                    raise SnapshotError(
                        f"snapshot position (seq {snap.seq} at stream seq {snap.stream_seq}) "
                        "is not in the event log"
                    )
        except (SnapshotError, ConfigurationError) as err:
            log.warning("skipping a snapshot of %s: %s", eventlog.agent, err.message)
            continue
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
    fold = EventFold(
        definition,
        eventlog.agent,
        state,
        position,
        at_seq=at_seq,
        at_time=at_time,
        progress=progress,
    )
    await eventlog.replay(fold, after_stream_seq=position.stream_seq)
    return fold.done(snapshot)
