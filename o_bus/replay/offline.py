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
from o_bus.store.event_records import H_SEQ, H_TIME, H_TYPE, H_VERSION, H_WAL, LogPosition
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
    fold = EventFold(definition, agent, state, position, at_seq=at_seq)
    after = position.stream_seq
    anchored = taken is None or taken.seq == 0
    step = fold.step
    for record in records:
        if record.subject != subject:
            continue
        headers = record.headers
        seq = record.seq
        if seq <= after:
            if not anchored and seq == after and taken is not None:
                anchored = int(headers[H_SEQ]) == taken.seq
            continue
        if not anchored:
            break
        # The fields StoredEvent.from_msg reads, without building one per event.
        if step(
            int(headers[H_SEQ]),
            seq,
            headers[H_TYPE],
            int(headers.get(H_VERSION, "1")),
            record.data,
            int(headers.get(H_WAL, "0")),
            headers.get(H_TIME, ""),
        ):
            break
    if not anchored:
        assert taken is not None
        raise SnapshotError(
            f"snapshot position (seq {taken.seq} at stream seq {taken.stream_seq}) "
            f"is not in the history of {agent!r}"
        )
    return fold.done(taken)
