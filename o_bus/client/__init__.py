"""Talking to a running platform from Python.

:class:`Client` (async) and :class:`SyncClient` (blocking) send commands, ask queries, rate
requests, read history and state and follow an agent's events, with typed results.
``send`` and ``query`` are the low-level calls over a connection you own.
"""

from o_bus.client.core import Client
from o_bus.client.models import (
    AgentState,
    CommandReply,
    EventOut,
    FeedbackReply,
    HistoryEvent,
    QueryReply,
    ReplyError,
)
from o_bus.client.stream import EventStream
from o_bus.client.sync import SyncClient
from o_bus.requests import query, request_headers, send

__all__ = [
    "AgentState",
    "Client",
    "CommandReply",
    "EventOut",
    "EventStream",
    "FeedbackReply",
    "HistoryEvent",
    "QueryReply",
    "ReplyError",
    "SyncClient",
    "query",
    "request_headers",
    "send",
]
