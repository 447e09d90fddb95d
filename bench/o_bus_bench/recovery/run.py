"""One configuration: a fresh server and services, steady load, ``kill -9`` after ``kill -9``.

``--kills`` times, the ACTIVE agent process (found from its heartbeats on ``o.hb.counter``) is
killed with SIGKILL once the agent is ready again (an active, and a standby where the policy
keeps one) and ``--interval`` seconds have passed since the previous kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nats
from nats.aio.client import Client

from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus_bench.errors import BenchError
from o_bus_bench.stats import CpuSampler

from .figures import attribute, recoveries
from .heartbeats import HeartbeatWatch
from .log_scan import LogScan, scan_log
from .options import CONFIGS, Options, policy
from .processes import is_agent_process, kill_leftovers, rss_mb
from .results import ConfigResult, KillResult
from .services import (
    READY_TIMEOUT,
    Service,
    prepare,
    replayed,
    start_services,
    stop_services,
    until_answered,
)
from .steady_load import SteadyLoad

__all__ = ["measure"]

RECOVERY_TIMEOUT: Final = 30.0


@dataclass(slots=True, frozen=True)
class _Kill:
    at: float  # monotonic time of os.kill
    victim: int
    new_pid: int | None  # the active process that replaced it
    active_ms: float | None  # kill -> first heartbeat of the new active


def _say(options: Options, message: str) -> None:
    if options.progress:
        print(message, file=sys.stderr, flush=True)


async def _until(
    probe: Callable[[], bool],
    what: str,
    timeout: float,
    check: Callable[[], None] | None = None,
) -> None:
    """Poll ``probe`` until it is true (calling ``check`` each time); BenchError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise BenchError(f"gave up waiting for {what} after {timeout:.0f}s")
        await asyncio.sleep(0.01)


async def _kill_repeatedly(
    name: str,
    url: str,
    standby: bool,
    options: Options,
    watch: HeartbeatWatch,
    load: SteadyLoad,
    check: Callable[[], None],
) -> list[_Kill]:
    """``options.kills`` times: wait until ready, SIGKILL the active, wait for its successor
    to answer a request."""
    kills: list[_Kill] = []
    for number in range(1, options.kills + 1):
        try:
            await _until(lambda: watch.ready(standby), "readiness", READY_TIMEOUT, check)
        except BenchError as err:
            raise BenchError(
                f"{err.message} after kill {number - 1}: {watch.describe()} (heartbeats)"
            ) from None
        last_kill = kills[-1].at if kills else 0.0
        pause = max(0.0, last_kill + options.interval - time.monotonic())
        await asyncio.sleep(pause + random.uniform(0.0, 0.5))
        victim = watch.active()
        if victim is None:
            await _until(lambda: watch.active() is not None, "an active", READY_TIMEOUT, check)
            victim = watch.active()
        assert victim is not None
        if not is_agent_process(victim.pid, url):
            raise BenchError(f"pid {victim.pid} is not an agent process of this run")
        killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)

        def replaced(victim_pid: int = victim.pid, at: float = killed_at) -> bool:
            active = watch.active()
            return active is not None and active.pid != victim_pid and load.last_ok > at

        await _until(replaced, f"recovery after kill {number}", RECOVERY_TIMEOUT, check)
        newcomer = watch.active()
        since = newcomer.active_since if newcomer else None
        kill = _Kill(
            at=killed_at,
            victim=victim.pid,
            new_pid=newcomer.pid if newcomer else None,
            active_ms=(since - killed_at) * 1000 if since is not None else None,
        )
        kills.append(kill)
        _say(
            options,
            f"[{name}] kill {number}/{options.kills}: pid {victim.pid} -> "
            f"{kill.new_pid}, new active after {kill.active_ms or 0:.0f} ms",
        )
    return kills


async def _measure(
    url: str,
    server_pid: int,
    standby: bool,
    options: Options,
    services: list[Service],
    seen: set[int],
) -> ConfigResult:
    name = "standby" if standby else "restart"
    nc: Client = await nats.connect(url, name="o-bus-bench-recovery", max_reconnect_attempts=0)
    load: SteadyLoad | None = None
    try:
        watch = HeartbeatWatch()
        await watch.start(nc)

        def check() -> None:
            for service in services:
                service.check_alive()
            seen.update(watch.processes)

        await _until(lambda: watch.ready(standby), "the agent processes", READY_TIMEOUT, check)
        for service in services:  # the splitter answers its status subject once it routes
            await until_answered(nc, layout.service_status_subject(service.name))
        load = SteadyLoad(nc, options.rate, options.timeout, options.give_up, options.max_in_flight)
        pids = {service.name: service.proc.pid for service in services}
        sampler = CpuSampler({**pids, "server": server_pid, "bench": os.getpid()})
        sampler.start()
        watch.counting_cpu = True
        started = time.monotonic()
        load.start()
        await asyncio.sleep(options.warmup)
        kills = await _kill_repeatedly(name, url, standby, options, watch, load, check)
        await asyncio.sleep(1.0)
        await load.stop()
        seconds = time.monotonic() - started
        cpu = sampler.stop(seconds)
        cpu["agents"] = watch.cpu_percent(seconds)
        if "other" in cpu:
            cpu["other"] = round(max(0.0, cpu["other"] - cpu["agents"]), 1)
        seen.update(watch.processes)
        scan = await scan_log(nc)
    except BaseException:
        if load is not None:
            load.cancel()
        raise
    finally:
        await nc.close()
    return _result(name, standby, options, services, watch, load, kills, scan, seconds, cpu)


def _result(
    name: str,
    standby: bool,
    options: Options,
    services: list[Service],
    watch: HeartbeatWatch,
    load: SteadyLoad,
    kills: list[_Kill],
    scan: LogScan,
    seconds: float,
    cpu: dict[str, float],
) -> ConfigResult:
    records = load.records
    per_kill, unattributed = attribute(records, [kill.at for kill in kills])
    recovered = recoveries(records, [(kill.at, kill.victim) for kill in kills], scan.fences)
    results = [
        KillResult(
            victim_pid=kill.victim,
            recovery_ms=round(ms, 1) if ms is not None else None,
            active_ms=round(kill.active_ms, 1) if kill.active_ms is not None else None,
            new_pid=kill.new_pid,
            **counts,
        )
        for kill, ms, counts in zip(kills, recovered, per_kill, strict=True)
    ]
    ok_ids = {r.request_id for r in records if r.ok_at is not None}
    problems = list(scan.problems)
    if missing := ok_ids - scan.request_ids:
        problems.append(f"{len(missing)} acknowledged requests are not in the log")
    return ConfigResult(
        name=name,
        standby=standby,
        policy=policy(standby, options).model_dump(),
        kills=results,
        requests=len(records),
        succeeded=len(ok_ids),
        peak_in_flight=load.peak_in_flight,
        shed=load.shed,
        seconds=round(seconds, 1),
        unattributed_failures=unattributed,
        rss_mb=watch.rss_mb(),
        service_rss_mb={s.name: rss_mb(s.proc.pid) for s in services},
        agent_processes=len(watch.processes),
        log_events=scan.events,
        log_problems=problems,
        cpu_percent=cpu,
        loadavg=[round(x, 2) for x in os.getloadavg()],
    )


def measure(name: str, options: Options, work_dir: Path) -> ConfigResult:
    """Run one configuration (``standby`` or ``restart``) on a fresh server in ``work_dir``."""
    standby = CONFIGS[name]
    work_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(work_dir / "nats", port=0)
    services: list[Service] = []
    seen: set[int] = set()
    server.start()
    try:
        asyncio.run(prepare(server.url, policy(standby, options)))
        services = start_services(server.url, work_dir)
        _say(options, f"[{name}] server {server.url}, work dir {work_dir}")
        server_pid = server.pid or 0
        result = asyncio.run(_measure(server.url, server_pid, standby, options, services, seen))
        result.replayed = replayed(work_dir / "supervisor.log")
        return result
    finally:
        stop_services(services)
        kill_leftovers(seen, server.url)
        server.stop()
