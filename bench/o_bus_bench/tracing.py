"""`o-bus bench tracing`: request throughput with tracing off, off with a ``traceparent`` on
every request (what passing it through costs), and on (spans exported over OTLP/HTTP to a
local collector), each beside the raw nats-py floor measured on the same server.

Each mode gets its own server and services (the splitter and the agent as `o-bus up` runs
them, with the mode's environment); at each concurrency the project path and the raw path
are measured in turn, as in `o-bus bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o_bus.errors import OBusError
from o_bus.tracing import otlp_environment
from o_bus_bench.arguments import at_least_one, levels, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.load import run_level
from o_bus_bench.otlp_collector import OtlpCollector
from o_bus_bench.stack import PROJECT_SUBJECT, RAW_SUBJECT, Stack
from o_bus_bench.stats import LevelResult, ratio

__all__ = ["main"]

MODES = ("off", "off+traceparent", "on")


@dataclass
class ModeRun:
    mode: str
    levels: list[tuple[LevelResult, LevelResult]] = field(default_factory=list)  # project, raw
    spans: int = 0  # received by the collector (mode "on")

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "spans_received": self.spans,
            "levels": [
                {"project": project.as_dict(), "raw": raw.as_dict()} for project, raw in self.levels
            ],
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench tracing",
        description="Requests through o.req.counter with tracing off, off with a traceparent, "
        "and on (exporting to a local OTLP collector), each beside the raw nats-py floor.",
    )
    parser.add_argument("--duration", type=positive, default=5.0, help="seconds per level")
    parser.add_argument("--warmup", type=positive, default=1.0, help="seconds before each")
    parser.add_argument(
        "--levels", type=levels, default=[1, 16, 64], help="requests in flight (default 1,16,64)"
    )
    parser.add_argument("--repeats", type=at_least_one, default=1, help="median of N runs")
    parser.add_argument("--quick", action="store_true", help="1 s per level: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep data and logs here")
    return parser


def _environment(mode: str, collector: OtlpCollector) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode == "on":
        env.update(otlp_environment(collector.url))
    return env


def _median(results: list[LevelResult]) -> LevelResult:
    return sorted(results, key=lambda result: result.rps)[(len(results) - 1) // 2]


def _run_mode(
    mode: str, work_dir: Path, collector: OtlpCollector, args: argparse.Namespace
) -> ModeRun:
    run = ModeRun(mode)
    before = collector.received
    with Stack(work_dir, None, project_env=_environment(mode, collector)) as stack:
        pids = stack.pids()
        watch = {
            PROJECT_SUBJECT: {n: pids[n] for n in ("server", "splitter", "agent")},
            RAW_SUBJECT: {"server": pids["server"], "splitter": pids["raw-splitter"]},
        }
        for concurrency in args.levels:
            found: dict[str, list[LevelResult]] = {PROJECT_SUBJECT: [], RAW_SUBJECT: []}
            for _ in range(args.repeats):
                for subject in (PROJECT_SUBJECT, RAW_SUBJECT):
                    result = run_level(
                        stack.url,
                        subject,
                        concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        watch=watch[subject],
                        traceparent=mode != "off" and subject == PROJECT_SUBJECT,
                    )
                    print(
                        f"[tracing {mode}] {subject} C={concurrency}: {result.rps:,.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                    found[subject].append(result)
            run.levels.append((_median(found[PROJECT_SUBJECT]), _median(found[RAW_SUBJECT])))
    # The services flushed their spans when they stopped.
    run.spans = collector.received - before
    return run


def render(runs: list[ModeRun]) -> str:
    by_mode = {run.mode: run for run in runs}
    lines = [
        "| in flight | " + " | ".join(f"tracing {m} req/s (raw)" for m in MODES) + " | on/off |",
        "|---|" + "---|" * (len(MODES) + 1),
    ]
    for index, (off, _) in enumerate(by_mode["off"].levels):
        cells = []
        for mode in MODES:
            project, raw = by_mode[mode].levels[index]
            cells.append(
                f"{project.rps:,.0f} ({raw.rps:,.0f}) p99 {project.p99_ms:.1f} ms, "
                f"{ratio(project.rps, raw.rps):.0%} of raw"
            )
        on = by_mode["on"].levels[index][0]
        lines.append(
            f"| {off.concurrency} | " + " | ".join(cells) + f" | {ratio(on.rps, off.rps):.0%} |"
        )
    on_run = by_mode["on"]
    lines.append("")
    lines.append(f"spans received by the collector in mode on: {on_run.spans:,}")
    return "\n".join(lines) + "\n"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    previous = signal.signal(signal.SIGTERM, _interrupt)
    runs: list[ModeRun] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="o-bus-bench-tracing-") as scratch,
            OtlpCollector(keep=False) as collector,
        ):
            root = args.work_dir or Path(scratch)
            for mode in MODES:
                runs.append(_run_mode(mode, root / mode, collector, args))
    except (BenchError, OBusError) as err:
        print(f"o-bus bench tracing: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        document = {
            "options": {"duration": args.duration, "warmup": args.warmup, "levels": args.levels},
            "runs": [run.as_dict() for run in runs],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render(runs))
    return 0
