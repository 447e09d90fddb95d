"""``o-bus bench flood [--count N] [--invalid-every K] [--seconds S] [--json]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from o_bus.common.connect import connect
from o_bus_bench.arguments import count, positive
from o_bus_bench.flood.run import run_flood
from o_bus_bench.flood.victim import victim
from o_bus_bench.stack import AGENT, RAW_SUBJECT, Stack

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o-bus bench flood",
        description="A well-behaved client's latency while another client floods the bus "
        "with fire-and-forget requests, beside the raw floor from the same run.",
    )
    parser.add_argument("--count", type=count, default=1_000_000, help="flood requests")
    parser.add_argument(
        "--invalid-every", type=int, default=5, help="every Kth flood request is not JSON"
    )
    parser.add_argument(
        "--seconds", type=positive, default=5.0, help="victim alone, and after (default 5)"
    )
    parser.add_argument(
        "--splitters",
        type=count,
        default=1,
        help="splitter processes in the queue group (`o-bus up` runs 2 by default)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--work-dir", type=Path, help="keep server data and logs here")
    return parser


async def _measure(url: str, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    async with connect(url, "o-bus-bench-victim") as (nc, _):
        deadline = time.monotonic() + args.seconds
        raw = await victim(nc, RAW_SUBJECT, lambda: time.monotonic() > deadline)
        run = await run_flood(
            nc,
            url,
            agent=AGENT,
            count=args.count,
            invalid_every=args.invalid_every,
            seconds=args.seconds,
            log_dir=work_dir,
            splitters=args.splitters,
            floor_subject=RAW_SUBJECT,
        )
    result = run.summary()
    result["raw_unloaded"] = raw.summary()
    unloaded_p99 = result["unloaded"]["p99_ms"]
    result["during_p99_over_unloaded"] = (
        round(result["during"]["p99_ms"] / unloaded_p99, 1) if unloaded_p99 else None
    )
    floor_p99 = result["raw_during"]["p99_ms"]
    result["during_p99_over_raw_during"] = (
        round(result["during"]["p99_ms"] / floor_p99, 1) if floor_p99 else None
    )
    result["flood_rate"] = round(run.flood["sent"] / run.flood["seconds"])
    result["splitters"] = args.splitters
    return result


def render(result: dict[str, Any]) -> str:
    rows = [
        "| phase | served | overloaded replies | no reply (30 s) | no responders | p50 ms "
        "| p99 ms | max ms |"
    ]
    rows.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase in ("raw_unloaded", "unloaded", "raw_during", "during", "after"):
        f = result[phase]
        rows.append(
            f"| {phase} | {f['served']} | {f['overloaded']} | {f['missing']} "
            f"| {f['no_responders']} | {f['p50_ms']} "
            f"| {f['p99_ms']} | {f['max_ms']} |"
        )
    flood, intake = result["flood"], result["intake"]
    return "\n".join(
        [
            *rows,
            "",
            f"flood: {int(flood['sent'])} sent ({int(flood['invalid'])} invalid) in "
            f"{flood['seconds']:.1f} s ({result['flood_rate']}/s)",
            f"victim p99 during / unloaded: {result['during_p99_over_unloaded']}x "
            f"(the raw path during the flood: {result['raw_during']['p99_ms']} ms, "
            f"{result['during_p99_over_raw_during']}x of it)",
            f"recovery (flood end -> nothing waits): {result['recovery_s']} s",
            f"splitters ({result['splitters']}): accepted {intake['accepted']}, "
            f"refused {intake['refused']}, "
            f"dead letters not written {intake['dead_letters_not_written']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-flood-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        with Stack(work_dir, None, splitters=args.splitters) as stack:
            result = asyncio.run(_measure(stack.url, args, work_dir))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
