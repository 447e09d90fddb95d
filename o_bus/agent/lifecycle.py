"""Agent lifecycle states and the allowed transitions between them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from o_bus.errors import OBusError

__all__ = ["LifecycleChanged", "LifecycleState", "check_transition"]


class LifecycleState(StrEnum):
    INITIALIZING = "initializing"
    RUNNING = "running"
    EVOLVING = "evolving"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


_ALLOWED: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.INITIALIZING: frozenset(
        {LifecycleState.RUNNING, LifecycleState.SUSPENDED, LifecycleState.TERMINATED}
    ),
    LifecycleState.RUNNING: frozenset(
        {LifecycleState.EVOLVING, LifecycleState.SUSPENDED, LifecycleState.TERMINATED}
    ),
    LifecycleState.EVOLVING: frozenset(
        {LifecycleState.RUNNING, LifecycleState.SUSPENDED, LifecycleState.TERMINATED}
    ),
    LifecycleState.SUSPENDED: frozenset(
        {LifecycleState.INITIALIZING, LifecycleState.RUNNING, LifecycleState.TERMINATED}
    ),
    LifecycleState.TERMINATED: frozenset(),
}


def check_transition(current: LifecycleState, new: LifecycleState) -> None:
    if new not in _ALLOWED[current]:
        raise OBusError(f"lifecycle cannot go from {current} to {new}")


class LifecycleChanged(BaseModel):
    """System event published on ``o.sys.lifecycle.<agent>`` at every transition."""

    model_config = ConfigDict(frozen=True)
    agent: str
    previous: LifecycleState | None
    state: LifecycleState
    reason: str
    code_version: str
    pid: int
    at: str
