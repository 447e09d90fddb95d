"""Closed-loop load on the memory agent: ``remember`` commands through the WAL, ``recall``
queries on ``o.qry.memory``; per-request latency from send to reply."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client

from o_bus.requests import request_headers
from o_bus.store import layout
from o_bus.wire.codec import Encoding
from o_bus_bench.errors import BenchError
from o_bus_bench.stats import percentile

__all__ = ["Rate", "recall_load", "remember_load"]

AGENT = "memory"


@dataclass(slots=True)
class Rate:
    """Requests completed, their rate and latency (ms)."""

    what: str
    items: int
    concurrency: int
    completed: int
    errors: int
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    last_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _closed_loop(
    what: str,
    items: int,
    concurrency: int,
    bodies: Sequence[tuple[str, bytes, dict[str, str] | None]],
    nc: Client,
) -> Rate:
    latencies: list[float] = []
    errors = 0
    last_seq = 0
    cursor = iter(bodies)

    async def worker() -> None:
        nonlocal errors, last_seq
        for subject, body, headers in cursor:
            begin = time.perf_counter()
            try:
                reply = await nc.request(subject, body, timeout=30.0, headers=headers)
            except nats.errors.Error as err:
                raise BenchError(f"{what}: no reply: {err!r}") from err
            latencies.append((time.perf_counter() - begin) * 1000)
            answer = json.loads(reply.data)
            if not answer.get("ok"):
                errors += 1
            last_seq = max(last_seq, int(answer.get("seq") or 0))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return Rate(
        what,
        items,
        concurrency,
        len(latencies),
        errors,
        round(seconds, 2),
        round(len(latencies) / seconds, 1),
        round(percentile(latencies, 0.5), 2),
        round(percentile(latencies, 0.99), 2),
        last_seq,
    )


async def remember_load(
    nc: Client,
    texts: list[str],
    concurrency: int,
    items_after: int,
    importance: Callable[[int], float],
) -> Rate:
    """Remember every text (importance by position), ``concurrency`` requests in flight."""
    subject = layout.request_subject(AGENT)
    bodies = [
        (
            subject,
            json.dumps({"text": text, "importance": importance(n)}).encode(),
            request_headers("remember", uuid.uuid4().hex, Encoding.JSON, "o-bus/bench"),
        )
        for n, text in enumerate(texts)
    ]
    return await _closed_loop("remember", items_after, concurrency, bodies, nc)


async def recall_load(
    nc: Client, questions: list[str], concurrency: int, items: int, k: int = 5
) -> Rate:
    subject = layout.query_subject(AGENT)
    bodies: list[tuple[str, bytes, dict[str, str] | None]] = [
        (subject, json.dumps({"query": "recall", "params": {"text": q, "k": k}}).encode(), None)
        for q in questions
    ]
    return await _closed_loop("recall", items, concurrency, bodies, nc)
