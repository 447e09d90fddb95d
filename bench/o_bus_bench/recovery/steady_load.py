"""The open-loop load that runs throughout the kills, re-sending with the same id as clients do.

``rate`` requests/s, ``increment`` with a unique id each, every request in its own task, so
requests stuck in re-sends never hold back new ones. A request that gets no reply within
``timeout`` is re-sent with the same id.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Final

import nats.errors
from nats.aio.client import Client

from o_bus.errors import ErrorCode
from o_bus.requests import request_headers
from o_bus.wire.codec import Encoding
from o_bus_bench.load import BODY
from o_bus_bench.stack import PROJECT_SUBJECT

__all__ = ["RequestRecord", "SteadyLoad"]

SOURCE: Final = "o-bus/bench-recovery"
RESEND_PAUSE: Final = 0.05
# Error codes a client re-sends (same id) after a pause: the agent is restarting or the store
# hiccuped. Anything else is final for the request.
TRANSIENT_CODES: Final = frozenset(
    {ErrorCode.UNAVAILABLE.value, ErrorCode.INTERNAL.value, ErrorCode.CONCURRENCY_CONFLICT.value}
)


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    first_sent: float  # monotonic
    failures: list[tuple[float, str]] = field(default_factory=list)  # (when, timeout/code)
    ok_at: float | None = None
    seq: int = 0
    duplicate: bool = False
    gave_up: bool = False


class SteadyLoad:
    """Open-loop load: a new request every ``1 / rate`` seconds, whatever happens to earlier
    ones, each in its own task. A request is re-sent with the same id until it succeeds, gets a
    final error, or ``give_up`` seconds have passed. Requests stuck in re-sends therefore never
    hold back new traffic, so the first reply after a kill measures the failover."""

    def __init__(
        self, nc: Client, rate: float, timeout: float, give_up: float, max_in_flight: int
    ) -> None:
        self.nc = nc
        self.rate = rate
        self.timeout = timeout
        self.give_up = give_up
        self.max_in_flight = max_in_flight
        self.run_id = uuid.uuid4().hex[:12]
        self.records: list[RequestRecord] = []
        self.last_ok = 0.0
        self.shed = 0  # arrivals not sent because max_in_flight requests were in flight
        self.peak_in_flight = 0
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._generator: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._generator = asyncio.create_task(self._generate(), name="load")

    async def stop(self) -> None:
        """Send nothing new; wait for requests in flight to finish (or give up)."""
        self._stopping = True
        if self._generator is not None:
            await self._generator
        if self._in_flight:
            await asyncio.wait_for(asyncio.gather(*self._in_flight), self.give_up + 10.0)

    def cancel(self) -> None:
        """Abandon everything (the run failed)."""
        self._stopping = True
        for task in [self._generator, *self._in_flight]:
            if task is not None:
                task.cancel()

    async def _generate(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
                continue
            next_at = max(next_at + interval, now - 1.0)  # never a catch-up burst over 1 s
            in_flight = self._in_flight
            if len(in_flight) >= self.max_in_flight:
                self.shed += 1
                continue
            record = RequestRecord(f"{self.run_id}-{len(self.records)}", now)
            self.records.append(record)
            task = asyncio.create_task(self._complete(record))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            self.peak_in_flight = max(self.peak_in_flight, len(in_flight))

    async def _complete(self, record: RequestRecord) -> None:
        headers = request_headers("increment", record.request_id, Encoding.JSON, SOURCE)
        while True:
            try:
                msg = await self.nc.request(
                    PROJECT_SUBJECT, BODY, timeout=self.timeout, headers=dict(headers)
                )
            except nats.errors.TimeoutError:
                record.failures.append((time.monotonic(), "timeout"))
            except nats.errors.NoRespondersError:
                record.failures.append((time.monotonic(), "no_responders"))
                await asyncio.sleep(RESEND_PAUSE)
            else:
                now = time.monotonic()
                reply = json.loads(msg.data)
                if reply.get("ok"):
                    record.ok_at, record.seq = now, int(reply["seq"])
                    record.duplicate = bool(reply.get("duplicate"))
                    self.last_ok = max(self.last_ok, now)
                    return
                code = str((reply.get("error") or {}).get("code", "unknown"))
                record.failures.append((now, code))
                if code not in TRANSIENT_CODES:
                    record.gave_up = True
                    return
                await asyncio.sleep(RESEND_PAUSE)
            if time.monotonic() - record.first_sent > self.give_up:
                record.gave_up = True
                return
