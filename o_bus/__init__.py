"""O: an event-sourced message bus for agents that evolve their own code, on NATS JetStream.

The public API for agent authors::

    from o_bus import AgentDefinition, Command, Event, State, CommandRejected
"""

from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleState
from o_bus.errors import (
    AgentUnavailableError,
    CommandRejected,
    ConcurrencyError,
    ConfigurationError,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
    OBusError,
    SnapshotError,
    StorageError,
)
from o_bus.events.model import Command, Event, State

__all__ = [
    "AgentDefinition",
    "AgentUnavailableError",
    "Command",
    "CommandRejected",
    "ConcurrencyError",
    "ConfigurationError",
    "ErrorCode",
    "Event",
    "InvalidRequestError",
    "LifecycleState",
    "NotFoundError",
    "OBusError",
    "SnapshotError",
    "State",
    "StorageError",
]
__version__ = "0.1.0"
