"""`o-bus bench hosts`: aggregate request throughput with 1, 2 and 4 agents on two hosts,
beside the raw floor from the same run, and the busiest process at each level.

One embedded nats-server, ``--splitters`` splitters and two hosts (`o-bus run host --name h1`,
`--name h2`) run as under `o-bus up`; the agents (copies of ``counter``) are placed on the
hosts in turn. At each level a closed loop of ``--concurrency`` requesters, spread evenly over
the level's agents, sends ``increment``; then the same load runs on the raw floor (as many raw
splitters, one raw agent process per agent) on the same server. CPU of every process is
sampled over each measured window.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from o_bus.common.progress import Progress
from o_bus.errors import OBusError
from o_bus.store import layout
from o_bus_bench.arguments import at_least_one, levels, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.hosts_report import busiest, by_role, render
from o_bus_bench.hosts_stack import HOSTS, HostsStack
from o_bus_bench.load import run_level
from o_bus_bench.raw import RAW_REQUEST_PREFIX
from o_bus_bench.stats import LevelResult, ratio

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench hosts",
        description="Aggregate requests/s with several agents on two hosts (o-bus run host), "
        "beside the raw floor from the same run, and the busiest process at each level.",
    )
    parser.add_argument(
        "--agents",
        type=levels,
        default=[1, 2, 4],
        help="agents per level, comma-separated (default 1,2,4)",
    )
    parser.add_argument(
        "--concurrency",
        type=at_least_one,
        default=64,
        help="requests in flight, spread evenly over the agents (default 64)",
    )
    parser.add_argument(
        "--duration", type=positive, default=5.0, help="seconds measured per run (default 5)"
    )
    parser.add_argument(
        "--warmup", type=positive, default=1.0, help="seconds of load before each (default 1)"
    )
    parser.add_argument(
        "--splitters", type=at_least_one, default=2, help="splitter processes (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep server data and service logs here (default: a temp dir)",
    )
    return parser


@dataclass(slots=True)
class Level:
    """One level: its agents' hosts, the project's and the raw floor's figures."""

    placement: dict[str, str]
    project: LevelResult
    raw: LevelResult

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": len(self.placement),
            "placement": self.placement,
            "project": self.project.as_dict(),
            "raw": self.raw.as_dict(),
            "ratio": round(ratio(self.project.rps, self.raw.rps), 3),
            "busiest": {"project": busiest(self.project), "raw": busiest(self.raw)},
            "cpu_by_role": {"project": by_role(self.project), "raw": by_role(self.raw)},
        }


def _level(stack: HostsStack, count: int, args: argparse.Namespace, bar: Progress) -> Level:
    placement = stack.place(count)
    bar.note(f"{count} agents: {placement}")
    runs = []
    for path, subjects, pids in (
        ("project", [layout.request_subject(name) for name in placement], stack.project_pids()),
        ("raw", [RAW_REQUEST_PREFIX + name for name in placement], stack.raw_pids()),
    ):
        result = run_level(
            stack.url,
            subjects,
            args.concurrency,
            warmup=args.warmup,
            duration=args.duration,
            watch=pids,
        )
        stack.check_alive()
        bar.note(
            f"  {path}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms,"
            f" p99 {result.p99_ms:.1f} ms, CPU {result.cpu_percent}"
        )
        runs.append(result)
        bar(bar.done + 1)
    return Level(placement, runs[0], runs[1])


def _measure(work_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    if work_dir.exists() and any(work_dir.iterdir()):
        raise BenchError(f"{work_dir} is not empty: give --work-dir a new or empty folder")
    work_dir.mkdir(parents=True, exist_ok=True)
    stack = HostsStack(work_dir, args.splitters, max(args.agents))
    bar = Progress("hosts", 2 * len(args.agents), unit="runs")
    loadavg = [round(x, 2) for x in os.getloadavg()]
    try:
        stack.start()
        bar.note(f"server {stack.url}, work dir {work_dir}")
        found = [_level(stack, count, args, bar) for count in args.agents]
    finally:
        bar.close()
        stack.stop()
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": loadavg,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "agents": args.agents,
            "hosts": list(HOSTS),
            "splitters": args.splitters,
            "concurrency": args.concurrency,
            "duration": args.duration,
            "warmup": args.warmup,
        },
        "levels": [level.as_dict() for level in found],
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every process started here is stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-hosts-") as scratch:
            report = _measure(args.work_dir or Path(scratch), args)
    except (BenchError, OBusError) as err:
        print(f"o-bus bench hosts: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "o-bus bench hosts: interrupted; every process it started is stopped", file=sys.stderr
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    return 0
