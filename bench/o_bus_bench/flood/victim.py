"""The well-behaved client: one request at a time, each re-sent with the same id after an
``overloaded`` reply or a timeout until it is served, its latency measured from the first send;
during the flood, in turn with a request on the raw path (the floor under the same load)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client

from o_bus.errors import ErrorCode
from o_bus.requests import request_headers
from o_bus.wire.codec import Encoding
from o_bus_bench.stats import percentile

__all__ = ["VICTIM_SOURCE", "VictimFigures", "victim", "victim_beside_floor"]

VICTIM_SOURCE = "o-bus/bench-victim"
REPLY_TIMEOUT = 30.0  # a reply later than this is taken as lost (counted as missing)


@dataclass(slots=True)
class VictimFigures:
    served: int = 0  # requests answered ok (each counted once, re-sends included)
    new: int = 0  # of those, the ones the bus had not seen before (not duplicates)
    failed: int = 0  # answered with an error other than overloaded
    overloaded: int = 0  # overloaded replies, each followed by a re-send
    missing: int = 0  # sends that got no reply within REPLY_TIMEOUT
    unserved: int = 0  # sends that found no splitter subscribed (NATS "no responders")
    last_seq: int = 0  # the agent's event sequence in the last ok reply
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "served": self.served,
            "failed": self.failed,
            "overloaded": self.overloaded,
            "missing": self.missing,
            "no_responders": self.unserved,
            "p50_ms": round(percentile(ordered, 0.50), 2),
            "p99_ms": round(percentile(ordered, 0.99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
        }


async def _serve_one(nc: Client, subject: str, by: int, figures: VictimFigures) -> None:
    headers = request_headers("increment", uuid.uuid4().hex, Encoding.JSON, VICTIM_SOURCE)
    body = json.dumps({"by": by}).encode()
    started = time.perf_counter()
    pause = 0.005
    while True:
        try:
            msg = await nc.request(subject, body, headers=headers, timeout=REPLY_TIMEOUT)
        except nats.errors.TimeoutError:
            figures.missing += 1
            continue
        except nats.errors.NoRespondersError:  # the splitter is reconnecting
            figures.unserved += 1
            await asyncio.sleep(pause)
            continue
        reply = json.loads(msg.data)
        if reply.get("ok"):
            figures.latencies_ms.append((time.perf_counter() - started) * 1000)
            figures.served += 1
            figures.new += not reply.get("duplicate", False)
            figures.last_seq = int(reply.get("seq", 0))
            return
        if reply.get("error", {}).get("code") != ErrorCode.OVERLOADED.value:
            figures.failed += 1
            return
        figures.overloaded += 1
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)


async def victim(
    nc: Client, subject: str, until: Callable[[], bool], *, by: int = 1, at_least: int = 1
) -> VictimFigures:
    """Send requests one after another until ``until()`` (and at least ``at_least`` served)."""
    figures = VictimFigures()
    while figures.served + figures.failed < at_least or not until():
        await _serve_one(nc, subject, by, figures)
    return figures


async def victim_beside_floor(
    nc: Client,
    subject: str,
    floor_subject: str | None,
    until: Callable[[], bool],
    *,
    at_least: int = 1,
) -> tuple[VictimFigures, VictimFigures | None]:
    """Like :func:`victim`, with a request on ``floor_subject`` (the raw path, which the
    flood does not reach) after each one, if given: the machine's own delay under the same
    load."""
    if floor_subject is None:
        return await victim(nc, subject, until, at_least=at_least), None
    figures, floor = VictimFigures(), VictimFigures()
    while figures.served + figures.failed < at_least or not until():
        await _serve_one(nc, subject, 1, figures)
        await _serve_one(nc, floor_subject, 1, floor)
    return figures, floor
