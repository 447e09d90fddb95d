"""``o-bus bench sandbox``: what the sandbox's boundary costs.

- start-up: wall time from spawn to exit of ``python -c pass`` run plain (the raw floor),
  sandboxed without the boundary (limits, seccomp, audit hook), sandboxed with it (network
  namespace, uid or capabilities, Landlock) and with it plus a bus broker;
- the bus: round trips (NATS PING/PONG, ``flush``) to an embedded nats-server from a
  sandboxed process without the boundary (straight TCP) and with it (forwarder thread, unix
  socket, the parent's broker).

Variants are interleaved, so a change in the machine's load hits each alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from o_bus.evolution.sandbox import SandboxLimits, spawn_sandboxed
from o_bus.server.embedded import EmbeddedServer

__all__ = ["main"]

PING = """
import asyncio, json, sys, time
import nats
from o_bus.evolution.boundary import bus_url
async def ping(url, n):
    nc = await nats.connect(bus_url(url))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await nc.flush()
        times.append((time.perf_counter() - t) * 1e6)
    await nc.close()
    print(json.dumps(times))
asyncio.run(ping(sys.argv[1], int(sys.argv[2])))
"""


async def _start(limits: SandboxLimits | None, bus: str | None) -> float:
    started = time.perf_counter()
    if limits is None:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    else:
        process = await spawn_sandboxed(
            ["-c", "pass"], limits, stdout=subprocess.DEVNULL, bus=bus, inherit_env=False
        )
    await process.wait()
    return (time.perf_counter() - started) * 1000


async def _pings(url: str, n: int, boundary: bool) -> list[float]:
    process = await spawn_sandboxed(
        ["-c", PING, url, str(n)],
        SandboxLimits(boundary=boundary),
        stdout=subprocess.PIPE,
        bus=url if boundary else None,
        inherit_env=False,
    )
    out, _ = await process.communicate()
    times: list[float] = json.loads(out.decode().strip().splitlines()[-1])
    return times


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "n": len(ordered),
    }


async def run(starts: int, pings: int, url: str) -> dict[str, dict[str, dict[str, float]]]:
    variants: dict[str, tuple[SandboxLimits | None, str | None]] = {
        "plain python (raw floor)": (None, None),
        "sandbox without boundary": (SandboxLimits(boundary=False), None),
        "sandbox with boundary": (SandboxLimits(), None),
        "sandbox with boundary and bus broker": (SandboxLimits(), url),
    }
    start_ms: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(starts):
        for name, (limits, bus) in variants.items():
            start_ms[name].append(await _start(limits, bus))
    ping_us: dict[str, list[float]] = {"straight TCP (no boundary)": [], "through the broker": []}
    for _ in range(3):
        ping_us["straight TCP (no boundary)"] += await _pings(url, pings, False)
        ping_us["through the broker"] += await _pings(url, pings, True)
    return {
        "start_ms": {name: _figures(v) for name, v in start_ms.items()},
        "bus_round_trip_us": {name: _figures(v) for name, v in ping_us.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="o-bus bench sandbox", description=__doc__)
    parser.add_argument("--starts", type=int, default=20, help="start-ups per variant")
    parser.add_argument("--pings", type=int, default=500, help="round trips per process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-sandbox-") as folder:
        server = EmbeddedServer(Path(folder) / "nats", port=0)
        server.start()
        try:
            result = asyncio.run(run(args.starts, args.pings, server.url))
        finally:
            server.stop()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for section, unit in (("start_ms", "ms"), ("bus_round_trip_us", "us")):
        print(section)
        for name, fig in result[section].items():
            print(
                f"  {name:40s} median {fig['median']:8.1f} {unit}  "
                f"p90 {fig['p90']:8.1f} {unit}  (n={int(fig['n'])})"
            )
    return 0
