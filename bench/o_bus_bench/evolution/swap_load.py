"""Hot reload under load, in its own process (``python -m o_bus_bench.evolution.swap_load``).

The closed loop of :mod:`o_bus_bench.load` runs against ``o.req.counter`` and keeps, for each
reply in the measured window, when its request was sent, its latency and whether it failed.
The window has two phases on one connection: ``--steady`` seconds with no change, then
``--swaps`` hot reloads, one every ``--every`` seconds: ``route.live`` flips between the
registered code (None) and ``--version`` through :meth:`RouteStore.update`, and the agent's
lifecycle event for the new code marks when the switch was done. A request belongs to a
swap's window if it was sent from 100 ms before the route update until 500 ms after it (or
100 ms after the switch was done, if later); the requests of the swap phase outside every
window are reported too, as steady state measured at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from o_bus.agent.lifecycle import LifecycleChanged
from o_bus.common.connect import connect
from o_bus.common.event_loop import install_uvloop
from o_bus.evolution.routes import Route, RouteStore
from o_bus.store import layout
from o_bus_bench.load import NATS_STATUS_HEADER, STATUS_HEADER, ClosedLoop
from o_bus_bench.stats import CpuSampler, percentile

__all__ = ["Latencies", "SwapResult", "SwapTiming", "TimedLoop"]

BEFORE_S = 0.1  # a swap's window opens this long before the route update
AFTER_S = 0.5  # and closes this long after it at the earliest
AFTER_SWITCH_S = 0.1  # or this long after the agent switched, if that is later


class TimedLoop(ClosedLoop):
    """The closed loop, also keeping (sent at, latency, failed) of every measured reply."""

    def __init__(self, nc: Client, subject: str, concurrency: int, timeout: float) -> None:
        super().__init__(nc, subject, concurrency, timeout)
        self.samples: list[tuple[float, float, bool]] = []

    async def _on_reply(self, msg: Msg) -> None:
        now = time.perf_counter()
        slot_text, _, number_text = msg.subject[len(self.prefix) :].partition(".")
        slot = int(slot_text)
        if self.measuring and int(number_text) == self.generation[slot]:
            headers = msg.headers
            failed = bool(
                headers and (headers.get(STATUS_HEADER) == "error" or NATS_STATUS_HEADER in headers)
            )
            sent = self.sent_at[slot]
            self.samples.append((sent, now - sent, failed))
        await super()._on_reply(msg)


@dataclass(slots=True)
class Latencies:
    """Replies whose requests were sent in some span: count and latency in ms."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        ordered = sorted(seconds)
        return cls(
            count=len(ordered),
            p50_ms=round(percentile(ordered, 0.50) * 1000, 3),
            p99_ms=round(percentile(ordered, 0.99) * 1000, 3),
            max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 3),
        )


@dataclass(slots=True)
class SwapTiming:
    """One hot reload: to which code, and how long until the agent served it."""

    to: str
    update_ms: float  # the route update (compare-and-set and its record)
    switched_ms: float | None  # route update started -> the agent's lifecycle event
    window: Latencies | None = None


@dataclass(slots=True)
class SwapResult:
    concurrency: int
    steady: Latencies
    during_swaps: Latencies
    between_swaps: Latencies
    swaps: list[SwapTiming]
    completed: int
    errors: int
    timeouts: int
    rps: float
    cpu_percent: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwapResult:
        swaps = [
            SwapTiming(
                to=s["to"],
                update_ms=s["update_ms"],
                switched_ms=s["switched_ms"],
                window=Latencies(**s["window"]) if s.get("window") else None,
            )
            for s in data["swaps"]
        ]
        return cls(
            concurrency=data["concurrency"],
            steady=Latencies(**data["steady"]),
            during_swaps=Latencies(**data["during_swaps"]),
            between_swaps=Latencies(**data["between_swaps"]),
            swaps=swaps,
            completed=data["completed"],
            errors=data["errors"],
            timeouts=data["timeouts"],
            rps=data["rps"],
            cpu_percent=data.get("cpu_percent", {}),
        )


def _live_on(version: str | None) -> Callable[[Route], Route]:
    def change(route: Route) -> Route:
        return route.model_copy(update={"live": version})

    return change


class Swapper:
    """Flips the agent's live code and notes when each flip was asked for and done."""

    def __init__(self, url: str, agent: str, version: str) -> None:
        self.url, self.agent, self.version = url, agent, version
        self.switched: dict[str, asyncio.Event] = {}
        self.switched_at: dict[str, float] = {}
        # (started, update done, target label) per swap
        self.swaps: list[tuple[float, float, str]] = []

    async def _on_lifecycle(self, msg: Msg) -> None:
        try:
            event = LifecycleChanged.model_validate_json(msg.data)
        except ValidationError:
            return
        waiting = self.switched.get(event.code_version)
        if waiting is not None and not waiting.is_set():
            self.switched_at[event.code_version] = time.perf_counter()
            waiting.set()

    async def run(
        self, start_after: float, swaps: int, every: float, versions: dict[str | None, str]
    ) -> list[SwapTiming]:
        """``versions``: code version digest (None: registered) -> its definition version."""
        timings: list[SwapTiming] = []
        async with connect(self.url, "o-bus-bench-swapper") as (nc, js):
            routes = RouteStore(js)
            sub = await nc.subscribe(layout.lifecycle_subject(self.agent), cb=self._on_lifecycle)
            await asyncio.sleep(start_after)
            for number in range(swaps):
                target = self.version if number % 2 == 0 else None
                label = versions[target]
                self.switched[label] = done = asyncio.Event()
                started = time.perf_counter()
                await routes.update(
                    self.agent,
                    _live_on(target),
                    by="o-bus bench evolution",
                    reason=f"hot-reload benchmark, swap {number + 1} of {swaps}",
                )
                updated = time.perf_counter()
                try:
                    await asyncio.wait_for(done.wait(), every)
                    switched: float | None = self.switched_at[label] - started
                except TimeoutError:
                    switched = None
                self.swaps.append((started, updated, label))
                timings.append(
                    SwapTiming(
                        to=label,
                        update_ms=round((updated - started) * 1000, 3),
                        switched_ms=None if switched is None else round(switched * 1000, 3),
                    )
                )
                await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
            await sub.unsubscribe()
        return timings


def _split(
    samples: list[tuple[float, float, bool]],
    swaps: list[tuple[float, float, str]],
    timings: list[SwapTiming],
) -> tuple[list[float], list[float], list[float]]:
    """Latencies before the first swap, within swap windows, and between the windows of the
    swap phase; fills each timing's window."""
    windows: list[tuple[float, float]] = []
    for (started, _, _), timing in zip(swaps, timings, strict=True):
        end = started + AFTER_S
        if timing.switched_ms is not None:
            end = max(end, started + timing.switched_ms / 1000 + AFTER_SWITCH_S)
        windows.append((started - BEFORE_S, end))
        timing.window = Latencies.of(
            [lat for sent, lat, _ in samples if started - BEFORE_S <= sent < end]
        )
    first = windows[0][0] if windows else float("inf")
    steady, during, between = [], [], []
    for sent, latency, _ in samples:
        if sent < first:
            steady.append(latency)
        elif any(low <= sent < high for low, high in windows):
            during.append(latency)
        else:
            between.append(latency)
    return steady, during, between


async def _main(args: argparse.Namespace) -> SwapResult:
    watched = dict(item.split("=", 1) for item in args.watch or [])
    pids = {name: int(pid) for name, pid in watched.items()}
    pids["client"] = os.getpid()
    versions: dict[str | None, str] = {None: args.registered_label, args.version: args.label}
    duration = args.steady + args.swaps * args.every
    nc = await nats.connect(args.nats, name="o-bus-bench-swap-load", max_reconnect_attempts=0)
    try:
        loop = TimedLoop(nc, layout.request_subject(args.agent), args.concurrency, args.timeout)
        swapper = Swapper(args.nats, args.agent, args.version)
        result, timings = await asyncio.gather(
            loop.run(args.warmup, duration, CpuSampler(pids)),
            swapper.run(args.warmup + args.steady, args.swaps, args.every, versions),
        )
    finally:
        await nc.close()
    steady, during, between = _split(loop.samples, swapper.swaps, timings)
    return SwapResult(
        concurrency=args.concurrency,
        steady=Latencies.of(steady),
        during_swaps=Latencies.of(during),
        between_swaps=Latencies.of(between),
        swaps=timings,
        completed=result.completed,
        errors=result.errors,
        timeouts=result.timeouts,
        rps=result.rps,
        cpu_percent=result.cpu_percent,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o_bus_bench.evolution.swap_load")
    parser.add_argument("--nats", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--version", required=True, help="code version digest to swap to")
    parser.add_argument("--label", required=True, help="its definition version")
    parser.add_argument("--registered-label", required=True, help="the registered one's")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--steady", type=float, default=5.0)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--watch", action="append", help="NAME=PID: report this process's CPU")
    args = parser.parse_args(argv)
    install_uvloop()
    result = asyncio.run(_main(args))
    sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
