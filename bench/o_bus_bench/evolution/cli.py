"""``o-bus bench evolution``: options, the server run, the output."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from o_bus.errors import OBusError
from o_bus_bench.arguments import at_least_one, count, levels, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.stack import Stack

from .report import render
from .results import EvolutionReport
from .run import Settings, measure
from .shadows import SCHEDULING

__all__ = ["build_parser", "main"]


def _scheduling(text: str) -> list[str]:
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    if not kinds or any(kind not in SCHEDULING for kind in kinds):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SCHEDULING)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench evolution",
        description="Live throughput and p99 with 0, 1 and 3 shadows (sandboxed candidate "
        "processes), and latency during hot-reload swaps, beside the raw floor of the same run.",
    )
    parser.add_argument("--duration", type=positive, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=positive, default=1.0, help="seconds before each run")
    parser.add_argument(
        "--levels", type=levels, default=[16, 64], help="requests in flight (default 16,64)"
    )
    parser.add_argument(
        "--repeats", type=at_least_one, default=1, help="runs per cell, median reported"
    )
    parser.add_argument(
        "--scheduling",
        type=_scheduling,
        default=["idle", "cap"],
        help="how shadows are scheduled, comma-separated: idle (SCHED_IDLE, no cap: the "
        "default), cap (SCHED_IDLE and a 0.1-core hard cap), nice10, nice0 (normal "
        "scheduling at that niceness); default idle,cap",
    )
    parser.add_argument(
        "--swap-concurrency", type=at_least_one, default=64, help="requests in flight"
    )
    parser.add_argument(
        "--swap-steady", type=positive, default=5.0, help="seconds of steady state first"
    )
    parser.add_argument("--swaps", type=count, default=10, help="hot reloads (0 skips them)")
    parser.add_argument("--swap-every", type=positive, default=1.0, help="seconds between swaps")
    parser.add_argument("--quick", action="store_true", help="short runs, C=16 only: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="keep server data and service logs here"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    configs: list[tuple[int, str | None]] = [(0, None)]
    configs += [(n, kind) for kind in args.scheduling for n in (1, 3)]
    if args.quick:
        args.duration, args.warmup, args.levels = 1.0, 0.3, [16]
        args.swap_steady, args.swaps = 1.0, min(args.swaps, 4)
    return Settings(
        levels=args.levels,
        duration=args.duration,
        warmup=args.warmup,
        repeats=args.repeats,
        configs=configs,
        swap_concurrency=16 if args.quick else args.swap_concurrency,
        swap_steady=args.swap_steady,
        swaps=args.swaps,
        swap_every=args.swap_every,
    )


def _machine() -> dict[str, object]:
    from o_bus_bench.main import _machine as bench_machine

    return {**bench_machine(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(work_dir: Path, settings: Settings, report: EvolutionReport) -> None:
    if work_dir.exists() and any(work_dir.iterdir()):
        raise BenchError(f"{work_dir} is not empty: give --work-dir a new or empty folder")
    with Stack(work_dir, None) as stack:
        pids = stack.pids()
        watch = {role: pids[role] for role in ("server", "splitter", "agent")}
        watch_raw = {
            "server": pids["server"],
            "splitter": pids["raw-splitter"],
            "agent": pids["raw-agent"],
        }
        _progress(f"server {stack.url}, services {pids}")
        asyncio.run(measure(stack.url, settings, report, watch, watch_raw, _progress))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    report = EvolutionReport(
        _machine(),
        {
            "duration": settings.duration,
            "warmup": settings.warmup,
            "levels": settings.levels,
            "repeats": settings.repeats,
            "configs": [list(c) for c in settings.configs],
            "swap_concurrency": settings.swap_concurrency,
            "swap_steady": settings.swap_steady,
            "swaps": settings.swaps,
            "swap_every": settings.swap_every,
        },
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-evolution-") as scratch:
            _run(args.work_dir or Path(scratch) / "server", settings, report)
    except (BenchError, OBusError) as err:
        print(f"o-bus bench evolution: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    document = json.dumps(report.as_dict(), indent=2) + "\n"
    if args.save is not None:
        args.save.write_text(document, encoding="utf-8")
    sys.stdout.write(document if args.json else render(report))
    return 0
