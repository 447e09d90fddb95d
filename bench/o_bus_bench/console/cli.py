"""``o-bus bench console``: for each concurrency level, requests through the platform with
the console closed (no console process), then with a console process serving a viewer that
follows the agent's live timeline and the live figures, then the raw nats-py floor; all
against one server, each level from a fresh load-generator process."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from o_bus.common.answers import until_answered
from o_bus.common.connect import connect
from o_bus.errors import OBusError
from o_bus.store import layout
from o_bus_bench.arguments import at_least_one, levels, positive
from o_bus_bench.errors import BenchError
from o_bus_bench.load import run_level
from o_bus_bench.stack import AGENT, PROJECT_SUBJECT, RAW_SUBJECT, ServiceProcess, Stack
from o_bus_bench.stats import LevelResult

__all__ = ["build_parser", "main"]

READY_SECONDS = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench console",
        description="Request throughput with the web console open on a live timeline, beside "
        "the console closed and the raw floor, in one server run.",
    )
    parser.add_argument("--duration", type=positive, default=5.0, help="seconds per run (5)")
    parser.add_argument("--warmup", type=positive, default=1.0, help="seconds before each (1)")
    parser.add_argument(
        "--levels", type=levels, default=[1, 16, 64], help="requests in flight (1,16,64)"
    )
    parser.add_argument(
        "--repeats",
        type=at_least_one,
        default=1,
        help="runs of each kind per level, interleaved; the median is reported (1)",
    )
    parser.add_argument("--quick", action="store_true", help="1 s runs: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--work-dir", type=Path, help="keep data and logs here")
    return parser


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _wait_for(path: Path, what: str, child: ServiceProcess, text: str = "") -> str:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        child.check_alive()
        if path.is_file() and text in (content := path.read_text()) and content.strip():
            return content
        time.sleep(0.05)
    raise BenchError(f"{what} not ready in {READY_SECONDS}s")


class OpenConsole:
    """A console process and a viewer following the live timeline and figures."""

    def __init__(self, work_dir: Path, url: str) -> None:
        python = sys.executable
        self.data_dir = work_dir / "console"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "console-url").unlink(missing_ok=True)
        self.console = ServiceProcess(
            "console",
            [
                python,
                "-m",
                "o_bus.cli.main",
                "console",
                "--nats",
                url,
                "--port",
                "0",
                "--data-dir",
                str(self.data_dir),
            ],
            work_dir / "console.log",
        )
        address = _wait_for(self.data_dir / "console-url", "console", self.console).strip()
        token = (self.data_dir / "console-viewer.token").read_text().strip()
        self.viewer_log = work_dir / f"viewer-{time.monotonic_ns()}.log"
        self.viewer = ServiceProcess(
            "viewer",
            [python, "-m", "o_bus_bench.console.viewer", address, token, AGENT],
            self.viewer_log,
        )
        _wait_for(self.viewer_log, "viewer", self.viewer, "following")

    def close(self) -> dict[str, int]:
        """Stop both; what the viewer received."""
        self.viewer.terminate()
        self.viewer.wait(10.0)
        self.console.terminate()
        self.console.wait(10.0)
        last = self.viewer_log.read_text().strip().splitlines()[-1]
        try:
            counts: dict[str, int] = json.loads(last)
        except ValueError as err:
            raise BenchError(f"the viewer said {last!r}") from err
        return counts


def _line(label: str, result: LevelResult) -> str:
    return (
        f"  {label:<15} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  errors {result.errors + result.timeouts}"
    )


def _median(results: list[LevelResult]) -> LevelResult:
    return sorted(results, key=lambda result: result.rps)[(len(results) - 1) // 2]


def _start_health(work_dir: Path, url: str) -> ServiceProcess:
    """The health monitor, as under `o-bus up`: the live figures the console streams."""
    health = ServiceProcess(
        "health",
        [sys.executable, "-m", "o_bus.cli.main", "run", "health", "--nats", url, "--port", "0"],
        work_dir / "health.log",
    )

    async def ready() -> None:
        async with connect(url, "o-bus-bench") as (nc, _):
            await until_answered(
                nc,
                layout.service_status_subject("health"),
                timeout=READY_SECONDS,
                check=health.check_alive,
            )

    asyncio.run(ready())
    return health


def measure(args: argparse.Namespace, work_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with Stack(work_dir, None) as stack:
        health = _start_health(work_dir, stack.url)
        try:
            pids = stack.pids()
            project = {"server": pids["server"], "splitter": pids["splitter"]}
            project["agent"] = pids["agent"]
            raw = {"server": pids["server"], "splitter": pids["raw-splitter"]}
            raw["agent"] = pids["raw-agent"]
            for level in args.levels:
                rows.append(_level(args, stack, work_dir, level, project, raw))
        finally:
            health.terminate()
            health.wait(10.0)
    return rows


def _level(
    args: argparse.Namespace,
    stack: Stack,
    work_dir: Path,
    level: int,
    project: dict[str, int],
    raw: dict[str, int],
) -> dict[str, Any]:
    def run(subject: str, watch: dict[str, int]) -> LevelResult:
        return run_level(
            stack.url, subject, level, warmup=args.warmup, duration=args.duration, watch=watch
        )

    closed: list[LevelResult] = []
    opened: list[LevelResult] = []
    floor: list[LevelResult] = []
    received = {"events": 0, "figures": 0}
    for _ in range(args.repeats):
        closed.append(run(PROJECT_SUBJECT, project))
        console = OpenConsole(work_dir, stack.url)
        try:
            opened.append(run(PROJECT_SUBJECT, {**project, "console": console.console.pid}))
        finally:
            for key, value in console.close().items():
                received[key] = received.get(key, 0) + value
        floor.append(run(RAW_SUBJECT, raw))
    _progress(f"C={level}")
    row: dict[str, Any] = {
        "concurrency": level,
        "closed": _median(closed).as_dict(),
        "open": _median(opened).as_dict(),
        "raw": _median(floor).as_dict(),
        "viewer_received": {k: v // args.repeats for k, v in received.items()},
    }
    for label in ("closed", "open", "raw"):
        _progress(_line(label, LevelResult.from_dict(row[label])))
    _progress(f"  the viewer received per run {row['viewer_received']}")
    return row


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| in flight | console closed req/s (p99 ms) | console open req/s (p99 ms) | open/closed "
        "| raw floor req/s (p99 ms) | timeline events streamed | console CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        closed, opened, raw = row["closed"], row["open"], row["raw"]
        ratio = opened["rps"] / closed["rps"] if closed["rps"] else 0.0
        lines.append(
            f"| {row['concurrency']} | {closed['rps']:,.0f} ({closed['p99_ms']:.2f}) "
            f"| {opened['rps']:,.0f} ({opened['p99_ms']:.2f}) | {ratio:.0%} "
            f"| {raw['rps']:,.0f} ({raw['p99_ms']:.2f}) | {row['viewer_received']['events']:,} "
            f"| {opened['cpu_percent'].get('console', 0):.0f} |"
        )
    return "\n".join(lines) + "\n"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-console-") as scratch:
            rows = measure(args, args.work_dir or Path(scratch))
    except (BenchError, OBusError) as err:
        print(f"o-bus bench console: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        sys.stdout.write(json.dumps({"levels": rows}) + "\n")
    else:
        sys.stdout.write(render(rows))
    return 0
