"""One memory benchmark run: remember up to each size, then measure recall, the index's
catch-up and a full rebuild at that size, and the raw floor for the same number of items."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from o_bus.common.connect import connect
from o_bus.memory.embedder import HashingEmbedder
from o_bus_bench.memory.corpus import items, queries
from o_bus_bench.memory.floor import Floor, measure_floor
from o_bus_bench.memory.load import Rate, recall_load, remember_load
from o_bus_bench.memory.stack import MemoryStack
from o_bus_bench.stats import CpuSampler

__all__ = ["Options", "SizeResult", "run"]


@dataclass(slots=True, frozen=True)
class Options:
    sizes: list[int]
    remember_concurrency: int
    recall_concurrency: int
    recalls: int


@dataclass(slots=True)
class SizeResult:
    items: int
    remember: Rate
    remember_cpu: dict[str, float]
    index_lag_s: float
    index_per_s: float
    recall: Rate
    rebuild_s: float
    rebuild_per_s: float
    agent_ready_s: float
    index_bytes: int
    floor: Floor
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["remember"] = self.remember.as_dict()
        data["recall"] = self.recall.as_dict()
        data["floor"] = self.floor.as_dict()
        return data


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _importance(n: int, offset: int = 0) -> float:
    """0.5 to 0.99: every item leaving the short-term window is promoted, none dropped, so
    the index holds every item remembered (as the floor's table does)."""
    return 0.5 + ((n + offset) * 37 % 50) / 100


async def _measure(stack: MemoryStack, options: Options) -> list[SizeResult]:
    results = []
    async with connect(stack.url, "o-bus-bench-memory") as (nc, _):
        await stack.wait_ready(nc)
        have, last_seq = 0, 0
        questions = queries(options.recalls)
        for size in options.sizes:
            texts = items(size - have, start=have)
            sampler = CpuSampler({**stack.pids(), "bench": os.getpid()})
            sampler.start()
            started = time.perf_counter()
            remember = await remember_load(
                nc,
                texts,
                options.remember_concurrency,
                size,
                functools.partial(_importance, offset=have),
            )
            ended = time.perf_counter()
            cpu = sampler.stop(ended - started)
            last_seq = max(last_seq, remember.last_seq)
            _progress(
                f"remember to {size:,}: {remember.per_s:,.0f}/s, p50 {remember.p50_ms} ms, "
                f"p99 {remember.p99_ms} ms, errors {remember.errors}"
            )
            caught_up = await stack.wait_applied(nc, last_seq)
            index_lag = caught_up - ended
            _progress(f"index caught up {index_lag:.2f}s after the last reply")
            recall = await recall_load(nc, questions, options.recall_concurrency, size)
            _progress(
                f"recall at {size:,}: {recall.per_s:,.1f}/s, p50 {recall.p50_ms} ms, "
                f"p99 {recall.p99_ms} ms, errors {recall.errors}"
            )
            stats = await stack.stats(nc)
            stack.stop_agent()
            index_bytes = stack.index_path.stat().st_size
            stack.delete_index()
            begin = time.perf_counter()
            stack.start_agent()
            await stack.wait_ready(nc)
            ready = time.perf_counter() - begin
            rebuilt = await stack.wait_applied(nc, last_seq) - begin
            _progress(f"rebuild of {last_seq:,} events: {rebuilt:.2f}s (agent ready {ready:.2f}s)")
            floor = measure_floor(HashingEmbedder(), items(size), questions)
            _progress(
                f"floor at {size:,}: embed {floor.embed_per_s:,.0f}/s, sqlite-vec insert "
                f"{floor.insert_per_s:,.0f}/s, query {floor.query_per_s:,.1f}/s"
            )
            results.append(
                SizeResult(
                    items=size,
                    remember=remember,
                    remember_cpu=cpu,
                    index_lag_s=round(index_lag, 2),
                    index_per_s=round(len(texts) / (caught_up - started)),
                    recall=recall,
                    rebuild_s=round(rebuilt, 2),
                    rebuild_per_s=round(last_seq / rebuilt),
                    agent_ready_s=round(ready, 2),
                    index_bytes=index_bytes,
                    floor=floor,
                    stats=stats,
                )
            )
            have = size
    return results


def run(work_dir: Path, options: Options) -> list[SizeResult]:
    with MemoryStack(work_dir) as stack:
        _progress(f"server {stack.url}, processes {stack.pids()}")
        return asyncio.run(_measure(stack, options))
