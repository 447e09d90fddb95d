"""Staged work between processing and durability: events waiting for their atomic append,
and the replies that must not be sent before the append is acknowledged."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from o_bus.events.model import State
from o_bus.store.event_records import NewEvent
from o_bus.wire.codec import Encoding

__all__ = ["Outcome", "ReplyCache", "StagedRequests"]


@dataclass(slots=True)
class Outcome:
    """One processed request: its events (maybe none) and the reply to send once durable."""

    request_id: str
    wal_seq: int
    events: list[NewEvent]
    reply_to: str | None
    reply: dict[str, object]
    encoding: Encoding
    state_after: State
    seq_after: int
    accepted_ns: int = 0  # when the WAL stored the request (unix ns)
    waiters: list[tuple[str, Encoding]] = field(default_factory=list)


class StagedRequests:
    """A FIFO of outcomes; ``take`` hands out a batch that fits one atomic append."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._queue: deque[Outcome] = deque()
        self.by_request: dict[str, Outcome] = {}

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, outcome: Outcome) -> None:
        self._queue.append(outcome)
        self.by_request[outcome.request_id] = outcome

    def take(self) -> list[Outcome]:
        batch: list[Outcome] = []
        count = 0
        queue = self._queue
        while queue:
            size = len(queue[0].events)
            if batch and count + size > self.max_events:
                break
            batch.append(queue.popleft())
            count += size
        return batch

    def done(self, batch: list[Outcome]) -> None:
        for outcome in batch:
            self.by_request.pop(outcome.request_id, None)

    def drain(self) -> list[Outcome]:
        items = list(self._queue)
        self._queue.clear()
        self.by_request.clear()
        return items


class ReplyCache:
    """The most recent replies by request id (encoded JSON), for duplicates."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def put(self, request_id: str, reply_json: bytes) -> None:
        if self.capacity <= 0:
            return
        items = self._items
        items[request_id] = reply_json
        if len(items) > self.capacity:
            items.popitem(last=False)

    def get(self, request_id: str) -> bytes | None:
        return self._items.get(request_id)
