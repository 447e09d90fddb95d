"""`o-bus bench memory`: remember and recall through the bus at growing sizes, the index's
catch-up and full rebuild, each beside the raw embedder and sqlite-vec floor of the same run."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from o_bus.errors import OBusError
from o_bus_bench.arguments import at_least_one
from o_bus_bench.errors import BenchError
from o_bus_bench.memory.report import render
from o_bus_bench.memory.run import Options, run

__all__ = ["main"]


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError("expected integers separated by commas") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be integers >= 1")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench memory",
        description="Remember/recall throughput and p99, index catch-up and rebuild time of "
        "the memory agent, beside the raw embedder and sqlite-vec rates.",
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=[10_000, 100_000], help="items (default 10000,100000)"
    )
    parser.add_argument("--concurrency", type=at_least_one, default=64, help="remembers in flight")
    parser.add_argument(
        "--recall-concurrency", type=at_least_one, default=4, help="recalls in flight"
    )
    parser.add_argument("--recalls", type=at_least_one, default=500, help="recalls per size")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,5000: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep data and logs here")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.sizes, args.recalls = [1_000, 5_000], min(args.recalls, 100)
    options = Options(args.sizes, args.concurrency, args.recall_concurrency, args.recalls)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-bench-memory-") as scratch:
            work_dir = args.work_dir or Path(scratch)
            work_dir.mkdir(parents=True, exist_ok=True)
            results = run(work_dir, options)
    except (BenchError, OBusError) as err:
        print(f"o-bus bench memory: {err.message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    document: dict[str, Any] = {
        "options": options_dict(options),
        "sizes": [r.as_dict() for r in results],
    }
    text = json.dumps(document, indent=2) + "\n"
    if args.save is not None:
        args.save.write_text(text, encoding="utf-8")
    sys.stdout.write(text if args.json else render(results))
    return 0


def options_dict(options: Options) -> dict[str, Any]:
    return {
        "sizes": options.sizes,
        "remember_concurrency": options.remember_concurrency,
        "recall_concurrency": options.recall_concurrency,
        "recalls": options.recalls,
    }
