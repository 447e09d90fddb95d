"""Fold a recorded history with no NATS: the offline replayer.

``records`` are an agent's stream as :class:`~o_bus.store.log_record.LogRecord` (read from
JetStream once, or from a golden history file); only its event records are folded, outcome
and fence records are passed over as the JetStream rebuild passes over them. With
``snapshot`` (the bytes stored in the snapshot bucket) the fold starts from that snapshot and
replays the tail. The fold is :class:`o_bus.replay.fold.EventFold`, the one the JetStream
rebuild uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import SnapshotError
from o_bus.events.model import State
from o_bus.replay.fold import EventFold, Rebuilt, snapshot_state
from o_bus.store import layout
from o_bus.store.event_records import LogPosition, StoredEvent
from o_bus.store.log_record import LogRecord
from o_bus.store.snapshots import Snapshot

__all__ = ["replay_history"]


def replay_history(
    definition: AgentDefinition[Any],
    records: Iterable[LogRecord],
    *,
    snapshot: bytes | None = None,
    agent: str | None = None,
    at_seq: int | None = None,
) -> Rebuilt:
    """The state ``definition`` folds from ``records`` (the agent's stream, in order).

    ``agent`` defaults to the definition's name. A snapshot that does not decode, fit the
    definition or point at an event of ``records`` raises ``SnapshotError``; an event that
    cannot be decoded, upcast or applied raises ``ReplayError`` naming its sequence."""
    agent = agent or definition.name
    subject = layout.event_subject(agent)
    state: State = definition.initial_state()
    position = LogPosition()
    taken: Snapshot | None = None
    if snapshot is not None:
        taken, state = snapshot_state(definition, agent, snapshot)
        position = LogPosition(taken.seq, taken.stream_seq, taken.wal_seq)
    if at_seq is not None and position.seq >= at_seq:
        return Rebuilt(state, position, taken, 0)
    fold = EventFold(definition, state, position, at_seq=at_seq)
    after = position.stream_seq
    anchored = taken is None or taken.seq == 0
    from_headers = StoredEvent.from_msg
    for record in records:
        if record.subject != subject:
            continue
        if record.seq <= after:
            if not anchored and record.seq == after:
                anchored = _anchors(taken, from_headers(agent, record.seq, record.headers, b""))
            continue
        if not anchored:
            break
        if fold(from_headers(agent, record.seq, record.headers, record.data)):
            break
    if not anchored:
        assert taken is not None
        raise SnapshotError(
            f"snapshot position (seq {taken.seq} at stream seq {taken.stream_seq}) "
            f"is not in the history of {agent!r}"
        )
    return fold.done(taken)


def _anchors(snap: Snapshot | None, event: StoredEvent) -> bool:
    return snap is not None and event.seq == snap.seq
