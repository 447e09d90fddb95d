"""Options and output of ``o-bus bench evolution search``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from o_bus_bench.search.live_cost import CostReport, measure_cost
from o_bus_bench.search.run import Report, Settings, measure

__all__ = ["main", "render"]


def render(report: Report) -> str:
    one = report.throughput.get(1)
    lines = [f"evaluations/s of the sandboxed pool ({report.cores} cores):"]
    for workers, rate in sorted(report.throughput.items()):
        ratio = f"  ({rate / (one * workers):.2f} x {workers} x one worker)" if one else ""
        lines.append(f"  {workers} worker(s): {rate:.2f}/s{ratio}")
    lines.append("best fitness after N evaluations, mean over seeds (min..max):")
    lines.append("  N      " + "  ".join(f"{m:>22}" for m in report.curves))
    for index, mark in enumerate(report.checkpoints):
        cells = []
        for curves in report.curves.values():
            values = [c[index] for c in curves]
            cells.append(f"{sum(values) / len(values):.4f} ({min(values):.3f}..{max(values):.3f})")
        lines.append(f"  {mark:<6} " + "  ".join(f"{c:>22}" for c in cells))
    for method, seconds in report.seconds.items():
        lines.append(f"  {method}: {sum(seconds) / len(seconds):.1f} s per run")
    return "\n".join(lines) + "\n"


def render_cost(cost: dict[str, object]) -> str:
    def rps(key: str) -> str:
        value = cost[key]
        return f"{value:,.0f}/s" if isinstance(value, float) else "-"

    share = cost["cost"]
    return (
        f"live at C={cost['concurrency']}, median of {len(cost['runs'])} (raw floor "  # type: ignore[arg-type]
        f"{rps('raw_rps')}): alone {rps('live_rps')}, while a search runs "
        f"{rps('live_rps_searching')} (cost {share:.1%}), p99 {cost['live_p99_ms']:.2f} -> "
        f"{cost['live_p99_ms_searching']:.2f} ms; the search meanwhile "
        f"{cost['search_evaluations_per_s']:.2f} evaluations/s\n"
        if isinstance(share, float)
        else ""
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="o-bus bench evolution search")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40, help="evaluations per run")
    parser.add_argument("--jobs-per-worker", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--cost-concurrency", type=int, default=64, help="live load level")
    parser.add_argument(
        "--cost-repeats", type=int, default=3, help="raw / live / live+search rounds (0 skips)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load level")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--skip-search", action="store_true", help="only the live cost")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    workers = sorted({1, 2, cores})
    document: dict[str, object] = {}
    text = ""
    if not args.skip_search:
        settings = Settings(workers, args.jobs_per_worker, args.seeds, args.budget)
        report = asyncio.run(measure(settings))
        document = report.as_json()
        text = render(report)
    if args.cost_repeats:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-search-cost-") as scratch:
            cost: CostReport = measure_cost(
                Path(scratch) / "server",
                args.cost_concurrency,
                args.cost_repeats,
                args.warmup,
                args.duration,
            )
        document["live_cost"] = cost.as_json()
        text += render_cost(cost.as_json())
    if args.save:
        args.save.write_text(json.dumps(document, indent=2) + "\n")
    sys.stdout.write(json.dumps(document) + "\n" if args.json else text)
    return 0
