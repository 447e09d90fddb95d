"""Options and output of ``o-bus bench evolution search``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="o-bus bench evolution search")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40, help="evaluations per run")
    parser.add_argument("--jobs-per-worker", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    workers = sorted({1, 2, cores})
    report = asyncio.run(measure(Settings(workers, args.jobs_per_worker, args.seeds, args.budget)))
    document = report.as_json()
    if args.save:
        args.save.write_text(json.dumps(document, indent=2) + "\n")
    sys.stdout.write(json.dumps(document) + "\n" if args.json else render(report))
    return 0
