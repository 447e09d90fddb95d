"""`o-bus bench tracing`: request throughput with tracing off, off with a ``traceparent`` on
every request (what passing it through costs), and on (spans exported over OTLP/HTTP to a
local collector), each beside the raw nats-py floor measured on the same server.

Each mode has its own server and services (the splitter and the agent as `o-bus up` runs
them, with the mode's environment), all started together; at each concurrency the modes and
the raw path take turns, so a change in the machine's load hits them alike. A fourth mode
samples 1% of the traces at the root.
"""

from __future__ import annotations

import argparse
import contextlib
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

# mode -> (OTEL_* variables of the splitter and the agent, requests carry a traceparent)
MODES: dict[str, tuple[dict[str, str], bool]] = {
    "off": ({}, False),
    "off+traceparent": ({}, True),
    "on": ({"on": "1"}, True),
    # The sampling decision at the root (the splitter), 1 in 100: the rest get non-recording
    # spans, and the agent follows the splitter's decision.
    "on, 1% sampled": (
        {"on": "1", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
        | {"OTEL_TRACES_SAMPLER_ARG": "0.01"},
        False,
    ),
}


@dataclass
class LevelRun:
    concurrency: int
    project: dict[str, LevelResult] = field(default_factory=dict)  # by mode
    raw: LevelResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "project": {mode: result.as_dict() for mode, result in self.project.items()},
            "raw": self.raw.as_dict() if self.raw else None,
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench tracing",
        description="Requests through o.req.counter with tracing off, off with a traceparent, "
        "on (exporting to a local OTLP collector) and on with 1%% sampling, beside the raw "
        "nats-py floor; the modes alternate at each level.",
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
    variables = dict(MODES[mode][0])
    if variables.pop("on", None):
        env.update(otlp_environment(collector.url))
        env.update(variables)
    return env


def _median(results: list[LevelResult]) -> LevelResult:
    return sorted(results, key=lambda result: result.rps)[(len(results) - 1) // 2]


def _measure(
    stack: Stack, subject: str, concurrency: int, args: argparse.Namespace, traced: bool
) -> LevelResult:
    pids = stack.pids()
    prefix = "raw-" if subject == RAW_SUBJECT else ""
    watch = {"server": pids["server"]} | {n: pids[prefix + n] for n in ("splitter", "agent")}
    return run_level(
        stack.url,
        subject,
        concurrency,
        warmup=args.warmup,
        duration=args.duration,
        watch=watch,
        traceparent=traced,
    )


def _run(root: Path, collector: OtlpCollector, args: argparse.Namespace) -> list[LevelRun]:
    """Every mode's stack at once; at each level the modes and the raw path take turns."""
    runs = []
    with contextlib.ExitStack() as started:
        stacks = {
            mode: started.enter_context(
                Stack(root / f"mode-{index}", None, project_env=_environment(mode, collector))
            )
            for index, mode in enumerate(MODES)
        }
        for concurrency in args.levels:
            found: dict[str, list[LevelResult]] = {mode: [] for mode in [*MODES, "raw"]}
            for _ in range(args.repeats):
                for mode, (_, traced) in MODES.items():
                    found[mode].append(
                        _measure(stacks[mode], PROJECT_SUBJECT, concurrency, args, traced)
                    )
                found["raw"].append(_measure(stacks["off"], RAW_SUBJECT, concurrency, args, False))
                print(
                    f"[tracing C={concurrency}] "
                    + ", ".join(f"{m} {r[-1].rps:,.0f} req/s" for m, r in found.items()),
                    file=sys.stderr,
                    flush=True,
                )
            run = LevelRun(concurrency, {mode: _median(found[mode]) for mode in MODES})
            run.raw = _median(found["raw"])
            runs.append(run)
    return runs


def cpu_per_request(result: LevelResult) -> float:
    """CPU microseconds the splitter and the agent spent per reply: the cost of a mode that a
    busy machine's throughput figures hide (they also wait for a core)."""
    busy = result.cpu_percent.get("splitter", 0.0) + result.cpu_percent.get("agent", 0.0)
    return busy / 100 / result.rps * 1e6 if result.rps > 0 else 0.0


def render(runs: list[LevelRun], spans: int) -> str:
    lines = [
        "| in flight | raw floor | " + " | ".join(f"tracing {mode}" for mode in MODES) + " |",
        "|---|---|" + "---|" * len(MODES),
    ]
    for run in runs:
        assert run.raw is not None
        cells = [
            f"{r.rps:,.0f} req/s ({ratio(r.rps, run.raw.rps):.0%}), p99 {r.p99_ms:.1f} ms, "
            f"{cpu_per_request(r):.0f} µs CPU"
            for r in run.project.values()
        ]
        raw = (
            f"{run.raw.rps:,.0f} req/s, p99 {run.raw.p99_ms:.1f} ms, "
            f"{cpu_per_request(run.raw):.0f} µs CPU"
        )
        lines.append(f"| {run.concurrency} | {raw} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("(share of the raw floor; µs CPU: splitter + agent CPU time per reply)")
    lines.append(f"spans received by the collector: {spans:,}")
    return "\n".join(lines) + "\n"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="o-bus-bench-tracing-") as scratch,
            OtlpCollector(keep=False) as collector,
        ):
            runs = _run(args.work_dir or Path(scratch), collector, args)
            spans = collector.received  # the services flushed their spans as they stopped
    except (BenchError, OBusError) as err:
        print(f"o-bus bench tracing: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        document = {
            "options": {"duration": args.duration, "warmup": args.warmup, "levels": args.levels},
            "modes": {mode: env for mode, (env, _) in MODES.items()},
            "spans_received": spans,
            "levels": [run.as_dict() for run in runs],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render(runs, spans))
    return 0
