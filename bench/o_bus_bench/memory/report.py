"""The memory benchmark as a text table: figures through the bus beside the raw floor."""

from __future__ import annotations

from o_bus_bench.memory.run import SizeResult

__all__ = ["render"]


def render(results: list[SizeResult]) -> str:
    lines = [
        "Memory agent: remember through the WAL, recall on o.qry.memory "
        "(default hashing embedder, 256 dims, sqlite-vec cosine KNN, k=5)",
        "",
        "| items | remember/s (C) | p50 / p99 ms | agent CPU % | index lag s | recall/s (C) "
        "| p50 / p99 ms | rebuild s (events/s) | index MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cpu = r.remember_cpu.get("agent", 0.0)
        lines.append(
            f"| {r.items:,} | {r.remember.per_s:,.0f} ({r.remember.concurrency}) "
            f"| {r.remember.p50_ms} / {r.remember.p99_ms} | {cpu} | {r.index_lag_s} "
            f"| {r.recall.per_s:,.1f} ({r.recall.concurrency}) "
            f"| {r.recall.p50_ms} / {r.recall.p99_ms} "
            f"| {r.rebuild_s} ({r.rebuild_per_s:,}) | {r.index_bytes / 1e6:.1f} |"
        )
    lines += [
        "",
        "Raw floor, same run, one process, no bus: embed with the default embedder, insert the "
        "vectors into a fresh vec0 table in one transaction, k=5 queries one after another.",
        "",
        "| items | embed/s | sqlite-vec insert/s | query/s | query p50 / p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        f = r.floor
        lines.append(
            f"| {f.items:,} | {f.embed_per_s:,.0f} | {f.insert_per_s:,.0f} "
            f"| {f.query_per_s:,.1f} | {f.query_p50_ms} / {f.query_p99_ms} |"
        )
    return "\n".join(lines) + "\n"
