"""`o-bus bench`: request throughput and latency beside the raw floor, and replay speed.

For each server setting (default sync, then ``sync_interval: always``) it starts an embedded
nats-server, the splitter and the agent host (as `o-bus up` does) and the raw services, then
runs a closed loop at each concurrency level, project path and raw path in turn, each from a
fresh load-generator process. On the default-sync server it also measures replay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from o_bus.common.progress import Progress
from o_bus.errors import OBusError
from o_bus.server.embedded import find_nats_server
from o_bus_bench.arguments import at_least_one, count, levels, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.load import run_level
from o_bus_bench.replay import ReplayRow, measure_replay
from o_bus_bench.report import render
from o_bus_bench.results import BenchReport, LevelPair, ServerRun
from o_bus_bench.stack import PROJECT_SUBJECT, RAW_SUBJECT, Stack
from o_bus_bench.stats import LevelResult

__all__ = ["build_parser", "main"]

QUICK_DURATION = 1.0
QUICK_WARMUP = 0.3
QUICK_REPLAY_EVENTS = 20_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench",
        description="Measure requests through o.req.counter and replay speed, each beside "
        "the raw nats-py floor from the same run.",
    )
    parser.add_argument(
        "--duration",
        type=positive,
        default=None,
        help="seconds measured per concurrency level (default 5; 1 with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=positive,
        default=None,
        help="seconds of load before each measurement (default 1; 0.3 with --quick)",
    )
    parser.add_argument(
        "--levels",
        type=levels,
        default=[1, 16, 64, 256],
        help="requests in flight, comma-separated (default 1,16,64,256)",
    )
    parser.add_argument(
        "--repeats",
        type=at_least_one,
        default=1,
        help="runs per level and path; the median-throughput run is reported (default 1)",
    )
    parser.add_argument(
        "--replay-events",
        type=count,
        default=None,
        help="events in the replayed log (default 100000; 20000 with --quick; "
        "0 skips replay); a log a tenth that size is replayed too",
    )
    parser.add_argument(
        "--replay-repeats",
        type=at_least_one,
        default=None,
        help="replays per log, median reported (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--skip-sync-always",
        action="store_true",
        help="skip the second server run with sync_interval: always",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="NODES",
        help="also run on a local JetStream cluster of NODES servers, streams replicated on each",
    )
    parser.add_argument("--quick", action="store_true", help="short durations: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--save", type=Path, default=None, help="also write the JSON document to this file"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep server data and service logs here (default: a temp dir)",
    )
    return parser


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _machine() -> dict[str, Any]:
    try:
        out = subprocess.run(
            [str(find_nats_server()), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        nats_server = out.strip().rsplit(" ", 1)[-1] or "unknown"
    except (OBusError, OSError, subprocess.TimeoutExpired):
        nats_server = "unknown"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nats_server": nats_server,
        "nats_py": _version("nats-py"),
        "uvloop": _version("uvloop"),
    }


def _median(results: list[LevelResult]) -> LevelResult:
    """The run with the median throughput (the lower middle one of an even count)."""
    ranked = sorted(results, key=lambda result: result.rps)
    return ranked[(len(ranked) - 1) // 2]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _server_run(
    work_dir: Path,
    sync_interval: str | None,
    args: argparse.Namespace,
    replay_sizes: list[int],
    nodes: int = 1,
) -> tuple[ServerRun, list[ReplayRow]]:
    run = ServerRun(sync_interval, nodes=nodes)
    replay: list[ReplayRow] = []
    if work_dir.exists() and any(work_dir.iterdir()):
        raise BenchError(f"{work_dir} is not empty: give --work-dir a new or empty folder")
    runs = len(args.levels) * args.repeats * 2
    bar = Progress(f"[{run.label}] load", runs, unit="runs")
    with Stack(work_dir, sync_interval, nodes) as stack, contextlib.closing(bar):
        pids = stack.pids()
        watch_project = {
            "server": pids["server"],
            "splitter": pids["splitter"],
            "agent": pids["agent"],
        }
        watch_raw = {
            "server": pids["server"],
            "splitter": pids["raw-splitter"],
            "agent": pids["raw-agent"],
        }
        bar.note(f"[{run.label}] server {stack.url}, services {pids}")
        for concurrency in args.levels:
            results: dict[str, list[LevelResult]] = {PROJECT_SUBJECT: [], RAW_SUBJECT: []}
            for _ in range(args.repeats):
                for subject, watch in ((PROJECT_SUBJECT, watch_project), (RAW_SUBJECT, watch_raw)):
                    result = run_level(
                        stack.url,
                        subject,
                        concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        watch=watch,
                    )
                    bar.note(
                        f"[{run.label}] {subject} C={concurrency}: {result.rps:,.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                        f"CPU {result.cpu_percent}"
                    )
                    results[subject].append(result)
                    bar(bar.done + 1)
            run.levels.append(
                LevelPair(_median(results[PROJECT_SUBJECT]), _median(results[RAW_SUBJECT]))
            )
        if replay_sizes:
            bar.note(f"[{run.label}] replay of {', '.join(map(str, replay_sizes))} events")
            replay = measure_replay(stack.url, replay_sizes, args.replay_repeats)
    return run, replay


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]  # `o-bus bench -- --quick`: the separator the outer parser needs
    if argv[:1] == ["recovery"]:  # `o-bus bench recovery`: failover and restart times
        from o_bus_bench.recovery import main as recovery_main

        return recovery_main(argv[1:])
    if argv[:1] == ["cluster-kill"]:  # `o-bus bench cluster-kill`: a server's death
        from o_bus_bench.cluster_kill import main as cluster_kill_main

        return cluster_kill_main(argv[1:])
    if argv[:1] == ["hosts"]:  # `o-bus bench hosts`: agents on two hosts, beside the raw floor
        from o_bus_bench.hosts import main as hosts_main

        return hosts_main(argv[1:])
    if argv[:1] == ["flood"]:  # `o-bus bench flood`: a client's latency under another's flood
        from o_bus_bench.flood import main as flood_main

        return flood_main(argv[1:])
    if argv[:1] == ["security"]:  # `o-bus bench security`: credentials + TLS + encryption
        from o_bus_bench.security import main as security_main

        return security_main(argv[1:])
    if argv[:1] == ["tracing"]:  # `o-bus bench tracing`: tracing off, passed through, on
        from o_bus_bench.tracing import main as tracing_main

        return tracing_main(argv[1:])
    if argv[:1] == ["client"]:  # `o-bus bench client`: Python client paths beside raw NATS
        from o_bus_bench.client_paths import main as client_main

        return client_main(argv[1:])
    if argv[:1] == ["memory"]:  # `o-bus bench memory`: remember, recall, index rebuild
        from o_bus_bench.memory import main as memory_main

        return memory_main(argv[1:])
    if argv[:1] == ["console"]:  # `o-bus bench console`: throughput with the console open
        from o_bus_bench.console import main as console_main

        return console_main(argv[1:])
    if argv[:1] == ["sandbox"]:  # `o-bus bench sandbox`: what the sandbox's boundary costs
        from o_bus_bench.sandbox import main as sandbox_main

        return sandbox_main(argv[1:])
    if argv[:2] == ["evolution", "search"]:  # the self-evolution engine's throughput, progress
        from o_bus_bench.search import main as search_main

        return search_main(argv[2:])
    if argv[:1] == ["evolution"]:  # `o-bus bench evolution`: shadows' cost, hot reload
        from o_bus_bench.evolution import main as evolution_main

        return evolution_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.duration is None:
        args.duration = QUICK_DURATION if args.quick else 5.0
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else 1.0
    if args.replay_events is None:
        args.replay_events = QUICK_REPLAY_EVENTS if args.quick else 100_000
    if args.replay_repeats is None:
        args.replay_repeats = 1 if args.quick else 3
    replay_sizes = (
        sorted({max(1, args.replay_events // 10), args.replay_events}) if args.replay_events else []
    )
    report = BenchReport(
        _machine(),
        {
            "duration": args.duration,
            "warmup": args.warmup,
            "levels": args.levels,
            "repeats": args.repeats,
            "replay_events": args.replay_events,
            "replay_repeats": args.replay_repeats,
        },
    )
    settings: list[str | None] = [None] if args.skip_sync_always else [None, "always"]
    # SIGTERM unwinds like Ctrl-C, so every server and service started here is stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-") as scratch:
            root = args.work_dir or Path(scratch)
            for index, sync_interval in enumerate(settings):
                run, replay = _server_run(
                    root / f"server-{sync_interval or 'default'}",
                    sync_interval,
                    args,
                    replay_sizes if index == 0 else [],
                )
                report.runs.append(run)
                report.replay += replay
            if args.cluster > 1:
                run, _ = _server_run(
                    root / f"cluster-{args.cluster}", None, args, [], nodes=args.cluster
                )
                report.runs.append(run)
    except (BenchError, OBusError) as err:
        print(f"o-bus bench: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    document = json.dumps(report.as_dict(), indent=2) + "\n"
    if args.save is not None:
        args.save.write_text(document, encoding="utf-8")
    if args.json:
        sys.stdout.write(document)
    else:
        sys.stdout.write(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
