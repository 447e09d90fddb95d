"""O: an event-sourced message bus for agents that evolve their own code, on NATS JetStream.

The public API for agent authors::

    from o_bus import AgentDefinition, Command, Event, State, CommandRejected, Query, QueryContext

and for programs that talk to agents::

    from o_bus import Client

    async with Client("nats://127.0.0.1:4222") as bus:
        reply = await bus.send("counter", "increment", {"by": 2})

(``SyncClient`` blocks instead; ``send`` and ``query`` work over a connection you own.)
"""

from typing import TYPE_CHECKING, Any

from o_bus.agent.context import DecisionContext
from o_bus.agent.definition import AgentDefinition
from o_bus.agent.lifecycle import LifecycleState
from o_bus.agent.queries import Query, QueryContext
from o_bus.errors import (
    AgentCodeError,
    AgentNotFoundError,
    AgentUnavailableError,
    CodeVersionNotFoundError,
    CommandRejected,
    ConcurrencyError,
    ConfigurationError,
    ErrorCode,
    EvolutionNotFoundError,
    InvalidRequestError,
    NotFoundError,
    OBusError,
    RequestTimeoutError,
    SnapshotError,
    StorageError,
)
from o_bus.events.model import Command, Event, State

if TYPE_CHECKING:
    from o_bus.client import (
        AgentState,
        Client,
        CommandReply,
        FeedbackReply,
        HistoryEvent,
        QueryReply,
        SyncClient,
    )
    from o_bus.requests import query, send

__all__ = [
    "AgentCodeError",
    "AgentDefinition",
    "AgentNotFoundError",
    "AgentState",
    "AgentUnavailableError",
    "Client",
    "CodeVersionNotFoundError",
    "Command",
    "CommandRejected",
    "CommandReply",
    "ConcurrencyError",
    "ConfigurationError",
    "DecisionContext",
    "ErrorCode",
    "Event",
    "EvolutionNotFoundError",
    "FeedbackReply",
    "HistoryEvent",
    "InvalidRequestError",
    "LifecycleState",
    "NotFoundError",
    "OBusError",
    "Query",
    "QueryContext",
    "QueryReply",
    "RequestTimeoutError",
    "SnapshotError",
    "State",
    "StorageError",
    "SyncClient",
    "query",
    "send",
]
__version__ = "0.1.0"

_REQUESTS = frozenset({"query", "send"})
_CLIENT = frozenset(
    {
        "AgentState",
        "Client",
        "CommandReply",
        "FeedbackReply",
        "HistoryEvent",
        "QueryReply",
        "SyncClient",
    }
)


def __getattr__(name: str) -> Any:
    # The client imports nats-py; agent code (and the sandbox that validates it) imports
    # o_bus for the authoring API only, so the client loads on first use.
    if name in _REQUESTS:
        from o_bus import requests

        return getattr(requests, name)
    if name in _CLIENT:
        from o_bus import client

        return getattr(client, name)
    raise AttributeError(f"module 'o_bus' has no attribute {name!r}")
