"""``python -m o_bus.schemas [--check] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .files import DEFAULT_OUT, check, write

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m o_bus.schemas",
        description="Write schemas/ (JSON Schemas, AsyncAPI, README) from the Python models.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{args.out} is stale: run python -m o_bus.schemas", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    changes = write(args.out)
    for change in changes:
        print(change)
    print(f"{args.out}: {len(changes)} file(s) updated" if changes else f"{args.out} up to date")
    return 0
