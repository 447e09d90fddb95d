"""The pure part of a rebuild: check a snapshot against a definition, fold events into state.

Shared by the JetStream rebuild (:mod:`o_bus.replay.rebuild`) and the offline replayer
(:mod:`o_bus.replay.offline`), so both read history with one piece of code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import OBusError, SnapshotError
from o_bus.events.model import State
from o_bus.store.event_records import LogPosition, StoredEvent
from o_bus.store.snapshots import Snapshot

__all__ = ["EventFold", "Rebuilt", "ReplayError", "snapshot_state"]

PROGRESS_EVERY = 10_000


@dataclass(slots=True)
class Rebuilt:
    state: State
    position: LogPosition
    snapshot: Snapshot | None
    replayed: int


class ReplayError(OBusError):
    """A stored event could not be applied: the history and the code disagree."""


def snapshot_state(
    definition: AgentDefinition[Any], agent: str, raw: bytes
) -> tuple[Snapshot, State]:
    """Decode and verify snapshot bytes of ``agent`` and validate their state with
    ``definition`` (migrating an older state schema). Checking that its position is in the
    log is the caller's part. Raises ``SnapshotError`` or ``ConfigurationError``."""
    snap = Snapshot.decode(raw)
    if snap.agent != agent or snap.definition != definition.name:
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
    if snap.seq == 0 and snap.stream_seq != 0:
        raise SnapshotError("snapshot at seq 0 claims a position inside the log")
    state = definition.state_from(snap.state, snap.state_schema_version)
    assert isinstance(state, State)
    return snap, state


class EventFold:
    """Folds stored events, one call each, into ``definition``'s state.

    A call returns True when the fold is complete (``at_seq`` reached); an event after
    ``at_time`` is not applied and also ends it. A failing decode, upcast or applier raises
    ``ReplayError`` naming the event. The position is kept as plain integers and events of
    the current version are validated straight from their JSON: this loop runs once per
    event of every rebuild and offline replay."""

    __slots__ = (
        "_apply",
        "_current",
        "_decode",
        "agent",
        "at_seq",
        "at_time",
        "progress",
        "replayed",
        "seq",
        "state",
        "stream_seq",
        "wal_seq",
    )

    def __init__(
        self,
        definition: AgentDefinition[Any],
        agent: str,
        state: State,
        position: LogPosition,
        *,
        at_seq: int | None = None,
        at_time: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._decode, self._apply = definition.decode_event, definition.apply
        self._current = {
            name: (cls.event_version, cls) for name, cls in definition.event_types.items()
        }
        self.agent = agent
        self.state = state
        self.seq, self.stream_seq, self.wal_seq = (
            position.seq,
            position.stream_seq,
            position.wal_seq,
        )
        self.at_seq = at_seq
        self.at_time = at_time
        self.progress = progress
        self.replayed = 0

    @property
    def position(self) -> LogPosition:
        return LogPosition(self.seq, self.stream_seq, self.wal_seq)

    def __call__(self, event: StoredEvent) -> bool:
        return self.step(
            event.seq,
            event.stream_seq,
            event.type,
            event.version,
            event.data,
            event.wal_seq,
            event.time,
        )

    def step(
        self,
        seq: int,
        stream_seq: int,
        event_type: str,
        version: int,
        data: bytes,
        wal_seq: int,
        time: str,
    ) -> bool:
        """Fold one event given by its fields (what ``__call__`` does with a StoredEvent)."""
        if self.at_time is not None and time > self.at_time:
            return True
        try:
            current = self._current.get(event_type)
            if current is not None and current[0] == version:
                event = current[1].model_validate_json(data)
            else:  # an unknown type (a clear error) or an old version (upcast)
                event = self._decode(event_type, version, data)
            self.state = self._apply(self.state, event)
        except Exception as err:
            raise ReplayError(
                f"cannot apply {event_type!r} v{version} at seq {seq} of {self.agent!r}: {err}",
                details={"agent": self.agent, "seq": seq, "stream_seq": stream_seq},
            ) from err
        self.seq, self.stream_seq = seq, stream_seq
        if wal_seq > self.wal_seq:
            self.wal_seq = wal_seq
        self.replayed += 1
        if self.progress is not None and self.replayed % PROGRESS_EVERY == 0:
            self.progress(self.replayed)
        return self.at_seq is not None and seq >= self.at_seq

    def done(self, snapshot: Snapshot | None) -> Rebuilt:
        return Rebuilt(self.state, self.position, snapshot, self.replayed)
