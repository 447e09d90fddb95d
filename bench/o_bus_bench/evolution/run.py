"""The measurements: the raw floor, live with 0, 1 and 3 shadows, hot reload under load.

One server run (:class:`o_bus_bench.stack.Stack`: embedded nats-server, `o-bus run splitter`,
`o-bus run agent counter`, the raw services). For every concurrency level: the raw floor, then
live with each shadow configuration; shadows are started afresh for every measurement, so a
backlog one of them built up never spills into the next. Then the hot-reload run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic_core import from_json

from o_bus.common.connect import connect
from o_bus.evolution.routes import RouteStore
from o_bus.store import layout
from o_bus_bench.errors import BenchError
from o_bus_bench.load import run_level
from o_bus_bench.stack import AGENT, PROJECT_SUBJECT, RAW_SUBJECT
from o_bus_bench.stats import LevelResult

from .results import EvolutionReport, ShadowRow
from .shadows import (
    BY,
    REGISTERED_VERSION,
    DeployedCopy,
    deploy_copies,
    live_position,
    running_shadows,
)
from .swap_load import SwapResult

__all__ = ["Settings", "measure"]

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Settings:
    levels: list[int]
    duration: float
    warmup: float
    repeats: int
    configs: list[tuple[int, str | None]]  # (shadows, SCHEDULING key); None: no shadows
    swap_concurrency: int
    swap_steady: float
    swaps: int
    swap_every: float


def _median(rows: list[ShadowRow]) -> ShadowRow:
    ranked = sorted(rows, key=lambda row: row.live.rps)
    return ranked[(len(ranked) - 1) // 2]


async def _live_level(
    nc: Client,
    js: JetStreamContext,
    url: str,
    settings: Settings,
    concurrency: int,
    config: tuple[int, str | None],
    copies: list[DeployedCopy],
    watch: dict[str, int],
) -> ShadowRow:
    count, scheduling = config
    versions = [copy.digest for copy in copies[:count]]
    async with running_shadows(nc, js, url, AGENT, versions, scheduling or "idle") as shadows:
        before, (live_before, _) = shadows.compared(), await live_position(nc, AGENT)
        result = await asyncio.to_thread(
            run_level,
            url,
            PROJECT_SUBJECT,
            concurrency,
            warmup=settings.warmup,
            duration=settings.duration,
            watch={**watch, **shadows.pids},
        )
        figures = None
        if versions:
            live_after, live_seq = await live_position(nc, AGENT)
            await shadows.fresh_stats()
            figures = shadows.figures(before, live_after - live_before, live_seq)
        shadows.check()
    return ShadowRow(concurrency, count, scheduling, result, figures)


async def _wait_for_code(nc: Client, version: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        msg = await nc.request(layout.control_subject(AGENT, "status"), b"", timeout=5.0)
        if from_json(msg.data)["code_version"] == version:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the agent did not switch to code {version} within {timeout:g} s")
        await asyncio.sleep(0.05)


async def _swap_to(nc: Client, js: JetStreamContext, digest: str | None, version: str) -> None:
    await RouteStore(js).update(
        AGENT,
        lambda route: route.model_copy(update={"live": digest}),
        by=BY,
        reason="benchmark: load the swap code once before measuring",
    )
    await _wait_for_code(nc, version)


def _swap_run(
    url: str, copy: DeployedCopy, settings: Settings, watch: dict[str, int]
) -> SwapResult:
    cmd = [
        sys.executable,
        "-m",
        "o_bus_bench.evolution.swap_load",
        "--nats",
        url,
        "--agent",
        AGENT,
        "--version",
        copy.digest,
        "--label",
        copy.version,
        "--registered-label",
        REGISTERED_VERSION,
        "--concurrency",
        str(settings.swap_concurrency),
        "--warmup",
        str(settings.warmup),
        "--steady",
        str(settings.swap_steady),
        "--swaps",
        str(settings.swaps),
        "--every",
        str(settings.swap_every),
    ]
    for name, pid in watch.items():
        cmd += ["--watch", f"{name}={pid}"]
    limit = settings.warmup + settings.swap_steady + settings.swaps * settings.swap_every + 90
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as err:
        raise BenchError("the hot-reload load generator did not finish") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(
            f"the hot-reload load generator failed (exit {done.returncode}):\n"
            + "\n".join(done.stderr.strip().splitlines()[-15:])
        )
    data: dict[str, Any] = json.loads(lines[-1])
    return SwapResult.from_dict(data)


async def measure(
    url: str,
    settings: Settings,
    report: EvolutionReport,
    watch: dict[str, int],
    watch_raw: dict[str, int],
    progress: Progress,
) -> None:
    """Fill ``report`` with the figures of one server run."""
    async with connect(url, "o-bus-bench-evolution") as (nc, js):
        most = max((count for count, _ in settings.configs), default=0)
        labels = [f"shadow{n}" for n in range(1, most + 1)] + ["swap"]
        progress(f"deploying {len(labels)} copies of the counter as code versions")
        copies = await deploy_copies(js, AGENT, labels)
        for concurrency in settings.levels:
            # Repeats go round every configuration in turn, so a drift of the machine's speed
            # touches them all alike.
            raw: list[LevelResult] = []
            rows: dict[tuple[int, str | None], list[ShadowRow]] = {c: [] for c in settings.configs}
            for _ in range(settings.repeats):
                floor = await asyncio.to_thread(
                    run_level,
                    url,
                    RAW_SUBJECT,
                    concurrency,
                    warmup=settings.warmup,
                    duration=settings.duration,
                    watch=watch_raw,
                )
                raw.append(floor)
                progress(f"raw C={concurrency}: {floor.rps:,.0f} req/s, p99 {floor.p99_ms:.2f} ms")
                for config in settings.configs:
                    row = await _live_level(
                        nc, js, url, settings, concurrency, config, copies, watch
                    )
                    rows[config].append(row)
                    kept = f", shadow coverage {row.figures.kept_up():.0%}" if row.figures else ""
                    progress(
                        f"live C={concurrency}, {config[0]} shadow(s) {config[1] or ''}: "
                        f"{row.live.rps:,.0f} req/s, p99 {row.live.p99_ms:.2f} ms{kept}"
                    )
            report.raw.append(sorted(raw, key=lambda r: r.rps)[(len(raw) - 1) // 2])
            report.rows += [_median(rows[config]) for config in settings.configs]
        if settings.swaps:
            swap_copy = copies[-1]
            progress(f"hot reload: {settings.swaps} swaps at C={settings.swap_concurrency}")
            await _swap_to(nc, js, swap_copy.digest, swap_copy.version)
            await _swap_to(nc, js, None, REGISTERED_VERSION)
            report.swap = await asyncio.to_thread(_swap_run, url, swap_copy, settings, watch)
