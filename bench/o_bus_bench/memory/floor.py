"""Raw floors from the same run, without the bus: how fast the default embedder embeds, and
how fast sqlite-vec inserts and searches the same number of vectors in one process."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from o_bus.memory.database import MemoryDatabase, pack
from o_bus.memory.embedder import Embedder
from o_bus_bench.stats import percentile

__all__ = ["Floor", "measure_floor"]


@dataclass(slots=True)
class Floor:
    items: int
    embed_per_s: float
    insert_per_s: float
    query_per_s: float
    query_p50_ms: float
    query_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_floor(embedder: Embedder, texts: list[str], questions: list[str]) -> Floor:
    """Embed ``texts``, insert the vectors into a fresh vec0 table in one transaction, then
    run each of ``questions`` as a k=5 nearest-neighbour query, one after another."""
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-vec-") as scratch:
        db = MemoryDatabase(Path(scratch) / "floor.sqlite", dimensions=embedder.dimensions)
        try:
            started = time.perf_counter()
            with db.transaction():
                db.conn.executemany(
                    "INSERT INTO vectors(rowid, embedding, kind) VALUES (?, ?, 'note')",
                    ((n, pack(v)) for n, v in enumerate(vectors, 1)),
                )
            insert_s = time.perf_counter() - started
            db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as the running index would be
            latencies = []
            query_vectors = [embedder.embed_query(q) for q in questions]
            started = time.perf_counter()
            for vector in query_vectors:
                begin = time.perf_counter()
                db.conn.execute(
                    "SELECT rowid, distance FROM vectors WHERE embedding MATCH ? AND k = 5",
                    (pack(vector),),
                ).fetchall()
                latencies.append((time.perf_counter() - begin) * 1000)
            query_s = time.perf_counter() - started
        finally:
            db.close()
    latencies.sort()
    return Floor(
        items=len(texts),
        embed_per_s=round(len(texts) / embed_s),
        insert_per_s=round(len(texts) / insert_s),
        query_per_s=round(len(questions) / query_s, 1),
        query_p50_ms=round(percentile(latencies, 0.5), 2),
        query_p99_ms=round(percentile(latencies, 0.99), 2),
    )
