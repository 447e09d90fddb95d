"""``python -m o_bus_bench.recovery [--kills 20] [--json]``: options, the runs, the output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from o_bus.common.event_loop import install_uvloop
from o_bus.errors import OBusError
from o_bus_bench.arguments import at_least_one, positive

from .options import CONFIGS, Options
from .report import render
from .results import ConfigResult
from .run import measure

__all__ = ["build_parser", "main"]


def _configs(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or any(name not in CONFIGS for name in names):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(CONFIGS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m o_bus_bench.recovery",
        description="Kill -9 the active agent process under steady load, with and without a "
        "warm standby: time to the next successful reply, failed requests, RSS.",
    )
    parser.add_argument(
        "--kills", type=at_least_one, default=defaults.kills, help="kills per configuration"
    )
    parser.add_argument("--rate", type=positive, default=defaults.rate, help="requests/s")
    parser.add_argument(
        "--max-in-flight",
        type=at_least_one,
        default=defaults.max_in_flight,
        help="arrivals beyond this many requests in flight are not sent (counted as shed)",
    )
    parser.add_argument(
        "--timeout", type=positive, default=defaults.timeout, help="seconds before a re-send"
    )
    parser.add_argument(
        "--give-up", type=positive, default=defaults.give_up, help="seconds per request"
    )
    parser.add_argument(
        "--interval", type=positive, default=defaults.interval, help="seconds between kills"
    )
    parser.add_argument(
        "--warmup", type=positive, default=defaults.warmup, help="seconds of load before kill 1"
    )
    parser.add_argument(
        "--configs",
        type=_configs,
        default=defaults.configs,
        help="comma-separated: standby, restart (default both)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--save", type=Path, default=None, help="also write the JSON document to this file"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="keep server data and service logs here"
    )
    return parser


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = Options(
        kills=args.kills,
        rate=args.rate,
        max_in_flight=args.max_in_flight,
        timeout=args.timeout,
        give_up=args.give_up,
        interval=max(args.interval, Options().period + 0.5),
        warmup=args.warmup,
        configs=args.configs,
        work_dir=args.work_dir,
    )
    install_uvloop()
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": _loadavg(),
    }
    results: list[ConfigResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="o-bus-recovery-") as temp:
            root = args.work_dir or Path(temp)
            for name in options.configs:
                results.append(measure(name, options, root / name))
    except OBusError as err:
        print(f"recovery bench: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    machine["loadavg_after"] = _loadavg()
    document = {
        "machine": machine,
        "options": {**asdict(options), "work_dir": str(options.work_dir or "")},
        "results": [result.as_dict() for result in results],
    }
    if args.save is not None:
        args.save.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2) if args.json else render(results, options, machine))
    return 0
