"""`o-bus bench`: runs the benchmark, which is a distribution of its own (``o-bus-bench``).

The runtime wheel does not carry the benchmark; the benchmark declares itself under the
``o_bus.commands`` entry-point group, and this finds it there or says how to install it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points

__all__ = ["COMMANDS_GROUP", "INSTALL_HINT", "run_bench"]

COMMANDS_GROUP = "o_bus.commands"
INSTALL_HINT = (
    "o-bus bench: the benchmark is not installed. It is the o-bus-bench distribution, in the "
    "bench/ folder of an o-bus checkout: run `pip install -e ./bench` there."
)


def run_bench(argv: list[str]) -> int:
    """Run ``o-bus bench ARGV``; exit code 2 with how to install it when it is missing."""
    found = entry_points(group=COMMANDS_GROUP, name="bench")
    if not found:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    [entry] = list(found)
    bench_main: Callable[[list[str]], int] = entry.load()
    return bench_main(argv)
