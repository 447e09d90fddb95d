"""Reading history: rebuilds from JetStream, offline replay of recorded records, forks."""

from o_bus.replay.decide import DecidedRequests, RequestOutcome, decide_requests
from o_bus.replay.fold import Rebuilt, ReplayError
from o_bus.replay.offline import replay_history
from o_bus.store.log_record import LogRecord

__all__ = [
    "DecidedRequests",
    "LogRecord",
    "Rebuilt",
    "ReplayError",
    "RequestOutcome",
    "decide_requests",
    "replay_history",
]
