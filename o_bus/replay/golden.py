"""Check a recorded (golden) history against today's code.

The recording must hang together (each event and outcome names its request's WAL record), and
today's definition must fold the recorded events to the state the live agent recorded, reach
each recorded snapshot's state at that snapshot's sequence, and fold every snapshot plus the
tail after it to the same final state. Anything else is a :class:`HistoryMismatch` that names
the history and the sequence where code and history part.
"""

from __future__ import annotations

from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError, OBusError, SnapshotError
from o_bus.events.model import State
from o_bus.replay.fold import ReplayError
from o_bus.replay.history_file import RecordedHistory
from o_bus.replay.offline import replay_history
from o_bus.store.event_records import H_REQUEST, H_WAL
from o_bus.store.snapshots import Snapshot
from o_bus.wire.headers import CE_ID

__all__ = ["HistoryMismatch", "check_history"]


class HistoryMismatch(OBusError):
    """Today's code cannot fold a recorded history, or folds it to a different state."""


def _difference(got: dict[str, Any], recorded: dict[str, Any]) -> str:
    for key in sorted(set(got) | set(recorded)):
        if got.get(key) != recorded.get(key):
            return f"{key!r}: got {got.get(key)!r}, recorded {recorded.get(key)!r}"
    return "no field differs"


def _dump(state: State) -> dict[str, Any]:
    return state.model_dump(mode="json")


def _check_requests(history: RecordedHistory, where: str) -> None:
    """Every event and outcome names the WAL record of the request it answers."""
    requests = {record.seq: record.headers.get(CE_ID) for record in history.wal}
    for record in history.events:
        request = record.headers.get(H_REQUEST)  # fences answer no request
        wal_seq = int(record.headers.get(H_WAL, "0"))
        if request is not None and requests.get(wal_seq) != request:
            raise HistoryMismatch(
                f"{where}: record at stream seq {record.seq} names WAL record {wal_seq}, "
                "which is not its request in the recorded WAL",
                details={"history": str(history.path), "stream_seq": record.seq},
            )


def check_history(definition: AgentDefinition[Any], history: RecordedHistory) -> int:
    """Raise ``HistoryMismatch`` unless ``definition`` folds ``history`` as recorded.
    Returns the number of events folded from the start."""
    where = f"history {history.path}"
    _check_requests(history, where)
    expected = history.expected
    try:
        recorded = _dump(definition.state_from(expected["state"], expected["state_schema_version"]))
        full = replay_history(definition, history.events, agent=history.agent)
        for record in history.snapshots:
            snap = Snapshot.decode(record.data)
            at = replay_history(definition, history.events, agent=history.agent, at_seq=snap.seq)
            snap_state = _dump(definition.state_from(snap.state, snap.state_schema_version))
            if _dump(at.state) != snap_state:
                raise HistoryMismatch(
                    f"{where}: state after seq {snap.seq} differs from the recorded snapshot "
                    f"at seq {snap.seq}: {_difference(_dump(at.state), snap_state)}",
                    details={"history": str(history.path), "seq": snap.seq},
                )
            tail = replay_history(
                definition, history.events, agent=history.agent, snapshot=record.data
            )
            if _dump(tail.state) != recorded:
                raise HistoryMismatch(
                    f"{where}: snapshot at seq {snap.seq} plus its tail folds to a different "
                    f"state: {_difference(_dump(tail.state), recorded)}",
                    details={"history": str(history.path), "seq": snap.seq},
                )
    except ReplayError as err:
        raise HistoryMismatch(f"{where}: {err.message}", details=err.details) from err
    except (SnapshotError, ConfigurationError, KeyError) as err:
        raise HistoryMismatch(f"{where}: {err}", details={"history": str(history.path)}) from err
    if full.position.seq != expected["seq"] or _dump(full.state) != recorded:
        raise HistoryMismatch(
            f"{where}: the fold ends at seq {full.position.seq} (recorded {expected['seq']}) "
            f"with a different state: {_difference(_dump(full.state), recorded)}",
            details={"history": str(history.path), "seq": full.position.seq},
        )
    return full.replayed
