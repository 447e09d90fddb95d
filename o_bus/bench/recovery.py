"""Crash recovery under steady load: ``kill -9`` of the active agent process, time to recover.

``python -m o_bus.bench.recovery [--kills 20] [--json]``

Two configurations, each on its own embedded nats-server (127.0.0.1, a free port, a temporary
data directory) with the splitter and the supervisor as child processes, as under `o-bus up`:

- ``standby``: the supervision policy keeps a warm standby; when the active process dies, the
  supervisor tells the standby to take over (it has followed the log, so it only fences and
  serves), then starts a new standby.
- ``restart``: no standby; the supervisor starts a new process, which recovers from the
  latest snapshot plus the tail of the log.

An open-loop load runs throughout: ``--rate`` requests/s, ``increment`` with a unique id each,
every request in its own task, so requests stuck in re-sends never hold back new ones. A request
that gets no reply within ``--timeout`` is re-sent with the same id, as a real client does.
``--kills`` times, the ACTIVE agent process (found from its heartbeats on ``o.hb.counter``) is
killed with SIGKILL.

**Recovery time** of a kill: from ``os.kill`` to the first successful reply sent by the new
active process. "Sent by the new process" is read from the log afterwards: every process that
becomes active first writes a fence, so the first reply received after the kill whose event
sequence lies after the next fence is the first one the new process sent (a reply the killed
process sent just before it died does not count).

**Failed requests per kill**: requests with a timed-out attempt or an error reply after the
kill. Those that succeeded when re-sent with the same id are counted apart from outright
failures (no success within ``--give-up`` seconds, or an error that is not transient).

**RSS per agent process**: the largest ``rss_bytes`` each process reported in its heartbeats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from o_bus.agent.catalogue import Catalogue
from o_bus.agent.supervision import SupervisionPolicy
from o_bus.bench.errors import BenchError
from o_bus.bench.stats import CpuSampler
from o_bus.cli.services import SERVICE_STATUS_PREFIX
from o_bus.cli.up import register_definitions
from o_bus.client import request_headers
from o_bus.errors import ErrorCode, OBusError
from o_bus.runtime.connect import connect, install_uvloop
from o_bus.runtime.heartbeat import Heartbeat
from o_bus.server.embedded import EmbeddedServer
from o_bus.store import layout
from o_bus.store.provision import provision
from o_bus.wire.codec import Encoding

__all__ = ["ConfigResult", "KillResult", "main", "measure"]

AGENT: Final = "counter"
SUBJECT: Final = layout.request_subject(AGENT)
BODY: Final = b'{"by": 1}'
SOURCE: Final = "o-bus/bench-recovery"
TARGET_RECOVERY_MS: Final = 100.0  # seed target, median, with a warm standby
TARGET_RSS_MB: Final = 150.0
READY_TIMEOUT: Final = 60.0
RECOVERY_TIMEOUT: Final = 30.0
RESEND_PAUSE: Final = 0.05
# Error codes a client re-sends (same id) after a pause: the agent is restarting or the store
# hiccuped. Anything else is final for the request.
TRANSIENT_CODES: Final = frozenset(
    {ErrorCode.UNAVAILABLE.value, ErrorCode.INTERNAL.value, ErrorCode.CONCURRENCY_CONFLICT.value}
)
CONFIGS: Final = {"standby": True, "restart": False}


# -- results -----------------------------------------------------------------------------------


@dataclass(slots=True)
class KillResult:
    """One ``kill -9`` of the active process and what followed."""

    victim_pid: int
    recovery_ms: float | None  # kill -> first reply sent by the new active
    active_ms: float | None  # kill -> first heartbeat of the new active
    new_pid: int | None
    # Requests whose first timeout or error reply came after this kill (before the next one):
    resent_ok: int  # ... and that succeeded when re-sent with the same id
    failed: int  # ... and that never succeeded
    # Attempts after this kill (before the next one):
    timeouts: int  # timed out
    error_replies: int  # answered with an error


@dataclass(slots=True)
class ConfigResult:
    """One configuration: its kills, the load, RSS, and whether the log is intact."""

    name: str
    standby: bool
    policy: dict[str, Any]
    kills: list[KillResult]
    requests: int
    succeeded: int
    peak_in_flight: int
    shed: int  # arrivals not sent: too many requests in flight
    seconds: float
    unattributed_failures: int  # failed attempts before the first kill
    rss_mb: dict[str, float]  # per role: max over processes of their largest heartbeat RSS
    service_rss_mb: dict[str, float]
    agent_processes: int
    log_events: int
    log_problems: list[str]
    cpu_percent: dict[str, float]
    loadavg: list[float]
    replayed: list[int] = field(default_factory=list)  # events replayed by each new active

    @property
    def recoveries_ms(self) -> list[float]:
        return sorted(k.recovery_ms for k in self.kills if k.recovery_ms is not None)

    def summary(self) -> dict[str, Any]:
        values = self.recoveries_ms
        actives = sorted(k.active_ms for k in self.kills if k.active_ms is not None)
        resent = [k.resent_ok for k in self.kills]
        failed = [k.failed for k in self.kills]
        return {
            "kills": len(self.kills),
            "recovered": len(values),
            "recovery_median_ms": round(statistics.median(values), 1) if values else None,
            "recovery_p90_ms": round(_nearest_rank(values, 0.9), 1) if values else None,
            "recovery_max_ms": round(values[-1], 1) if values else None,
            "new_active_median_ms": round(statistics.median(actives), 1) if actives else None,
            "resent_ok_per_kill_median": statistics.median(resent) if resent else 0,
            "resent_ok_per_kill_max": max(resent, default=0),
            "failed_per_kill_median": statistics.median(failed) if failed else 0,
            "failed_per_kill_max": max(failed, default=0),
            "failed_requests": self.requests - self.succeeded,
            "replayed_median": statistics.median(self.replayed) if self.replayed else None,
            "replayed_max": max(self.replayed, default=None),
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data


def _nearest_rank(ascending: list[float], fraction: float) -> float:
    rank = max(1, min(len(ascending), int(fraction * len(ascending) + 0.999999)))
    return ascending[rank - 1]


# -- processes ---------------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def is_agent_process(pid: int, url: str, agent: str = AGENT) -> bool:
    """True if ``pid`` runs ``o-bus run agent <agent>`` against ``url`` (checked in /proc where
    there is one, so that a recycled pid is never signalled)."""
    if not Path("/proc/self").exists():
        return True
    cmdline = _cmdline(pid)
    if cmdline is None:
        return False
    args = cmdline.split(b"\0")
    return b"agent" in args and agent.encode() in args and url.encode() in args


def _rss_mb(pid: int) -> float:
    """Peak resident set size of ``pid`` in MB (0 where /proc is unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class _Service:
    """A bus service (`o-bus run NAME`) in its own session, its output in a log file."""

    def __init__(self, name: str, url: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "o_bus.cli.main", "run", name, "--nats", url],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise BenchError(
                f"{self.name} exited with code {self.proc.returncode}:\n" + "\n".join(tail)
            )

    def stop(self, timeout: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# -- heartbeats --------------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks (None where /proc is unavailable)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # the command name may hold spaces
    return int(fields[11]) + int(fields[12])


@dataclass(slots=True)
class SeenProcess:
    pid: int
    role: str
    lifecycle: str
    last_beat: float  # monotonic
    active_since: float | None = None  # monotonic time of its first "active" heartbeat
    max_rss: int = 0
    roles: set[str] = field(default_factory=set)
    cpu_first: int | None = None  # CPU ticks when first read while counting
    cpu_last: int | None = None
    cpu_read_at: float = 0.0


class HeartbeatWatch:
    """Every agent process seen on ``o.hb.<agent>``: role, lifecycle, RSS."""

    def __init__(self, agent: str = AGENT) -> None:
        self.agent = agent
        self.processes: dict[int, SeenProcess] = {}
        self.counting_cpu = False  # read each process's CPU ticks (at most 4 times a second)

    async def start(self, nc: Client) -> None:
        await nc.subscribe(layout.heartbeat_subject(self.agent), cb=self._on_beat)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        now = time.monotonic()
        seen = self.processes.get(beat.pid)
        if seen is None:
            seen = self.processes[beat.pid] = SeenProcess(beat.pid, beat.role, beat.lifecycle, now)
        seen.role, seen.lifecycle, seen.last_beat = beat.role, beat.lifecycle, now
        seen.max_rss = max(seen.max_rss, beat.rss_bytes)
        seen.roles.add(beat.role)
        if beat.role == "active" and seen.active_since is None:
            seen.active_since = now
        if self.counting_cpu and now - seen.cpu_read_at > 0.25:
            seen.cpu_read_at = now
            seen.cpu_last = _cpu_ticks(beat.pid)
            if seen.cpu_first is None:
                seen.cpu_first = seen.cpu_last

    def cpu_percent(self, seconds: float) -> float:
        """CPU of every agent process while counting, in % of one core (a process that died
        loses at most its last quarter second)."""
        ticks = sum(
            p.cpu_last - p.cpu_first
            for p in self.processes.values()
            if p.cpu_first is not None and p.cpu_last is not None
        )
        return round(100.0 * ticks / os.sysconf("SC_CLK_TCK") / seconds, 1) if seconds else 0.0

    def live(self, within: float = 0.5) -> list[SeenProcess]:
        limit = time.monotonic() - within
        return [p for p in self.processes.values() if p.last_beat >= limit]

    def active(self) -> SeenProcess | None:
        found = [p for p in self.live() if p.role == "active" and p.lifecycle == "running"]
        return max(found, key=lambda p: p.active_since or 0.0) if found else None

    def describe(self) -> str:
        live = self.live()
        return ", ".join(f"{p.pid} {p.role}/{p.lifecycle}" for p in live) or "no process"

    def ready(self, standby: bool) -> bool:
        """An active process serves, and (with ``standby``) a standby follows the log."""
        if self.active() is None:
            return False
        return not standby or any(
            p.role == "standby" and p.lifecycle == "standby" for p in self.live()
        )


# -- load --------------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    first_sent: float  # monotonic
    failures: list[tuple[float, str]] = field(default_factory=list)  # (when, timeout/code)
    ok_at: float | None = None
    seq: int = 0
    duplicate: bool = False
    gave_up: bool = False


class SteadyLoad:
    """Open-loop load: a new request every ``1 / rate`` seconds, whatever happens to earlier
    ones, each in its own task. A request is re-sent with the same id until it succeeds, gets a
    final error, or ``give_up`` seconds have passed. Requests stuck in re-sends therefore never
    hold back new traffic, so the first reply after a kill measures the failover."""

    def __init__(
        self, nc: Client, rate: float, timeout: float, give_up: float, max_in_flight: int
    ) -> None:
        self.nc = nc
        self.rate = rate
        self.timeout = timeout
        self.give_up = give_up
        self.max_in_flight = max_in_flight
        self.run_id = uuid.uuid4().hex[:12]
        self.records: list[RequestRecord] = []
        self.last_ok = 0.0
        self.shed = 0  # arrivals not sent because max_in_flight requests were in flight
        self.peak_in_flight = 0
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._generator: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._generator = asyncio.create_task(self._generate(), name="load")

    async def stop(self) -> None:
        """Send nothing new; wait for requests in flight to finish (or give up)."""
        self._stopping = True
        if self._generator is not None:
            await self._generator
        if self._in_flight:
            await asyncio.wait_for(asyncio.gather(*self._in_flight), self.give_up + 10.0)

    def cancel(self) -> None:
        """Abandon everything (the run failed)."""
        self._stopping = True
        for task in [self._generator, *self._in_flight]:
            if task is not None:
                task.cancel()

    async def _generate(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
                continue
            next_at = max(next_at + interval, now - 1.0)  # never a catch-up burst over 1 s
            in_flight = self._in_flight
            if len(in_flight) >= self.max_in_flight:
                self.shed += 1
                continue
            record = RequestRecord(f"{self.run_id}-{len(self.records)}", now)
            self.records.append(record)
            task = asyncio.create_task(self._complete(record))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            self.peak_in_flight = max(self.peak_in_flight, len(in_flight))

    async def _complete(self, record: RequestRecord) -> None:
        headers = request_headers("increment", record.request_id, Encoding.JSON, SOURCE)
        while True:
            try:
                msg = await self.nc.request(
                    SUBJECT, BODY, timeout=self.timeout, headers=dict(headers)
                )
            except nats.errors.TimeoutError:
                record.failures.append((time.monotonic(), "timeout"))
            except nats.errors.NoRespondersError:
                record.failures.append((time.monotonic(), "no_responders"))
                await asyncio.sleep(RESEND_PAUSE)
            else:
                now = time.monotonic()
                reply = json.loads(msg.data)
                if reply.get("ok"):
                    record.ok_at, record.seq = now, int(reply["seq"])
                    record.duplicate = bool(reply.get("duplicate"))
                    self.last_ok = max(self.last_ok, now)
                    return
                code = str((reply.get("error") or {}).get("code", "unknown"))
                record.failures.append((now, code))
                if code not in TRANSIENT_CODES:
                    record.gave_up = True
                    return
                await asyncio.sleep(RESEND_PAUSE)
            if time.monotonic() - record.first_sent > self.give_up:
                record.gave_up = True
                return


# -- the log -----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Fence:
    stream_seq: int
    pid: int
    events_before: int  # the agent sequence reached when this fence was written


@dataclass(slots=True)
class LogScan:
    fences: list[Fence] = field(default_factory=list)
    events: int = 0
    problems: list[str] = field(default_factory=list)
    request_ids: set[str] = field(default_factory=set)


async def scan_log(nc: Client, agent: str = AGENT) -> LogScan:
    """Read the agent's whole stream (events, outcomes, fences) in order: the fences, and
    whether event sequences are contiguous and no request was applied twice."""
    js = nc.jetstream()
    stream = layout.events_stream(agent)
    info = await js.stream_info(stream)
    last = info.state.last_seq
    scan = LogScan()
    if not info.state.messages:
        return scan
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    event_subject, fence_subject = layout.event_subject(agent), layout.fence_subject(agent)

    async def on_msg(msg: Msg) -> None:
        assert msg.metadata.sequence is not None
        stream_seq = msg.metadata.sequence.stream
        headers = msg.headers or {}
        if msg.subject == fence_subject:
            holder = headers.get("O-Holder", "")
            parts = holder.split(":")
            pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else 0
            scan.fences.append(Fence(stream_seq, pid, scan.events))
        elif msg.subject == event_subject:
            scan.events += 1
            seq = int(headers.get("ce-sequence", "0"))
            if seq != scan.events and len(scan.problems) < 10:
                scan.problems.append(f"event sequence {seq} where {scan.events} was expected")
            request_id = headers.get("ce-requestid", "")
            if request_id in scan.request_ids and len(scan.problems) < 10:
                scan.problems.append(f"request {request_id} applied twice")
            scan.request_ids.add(request_id)
        if stream_seq >= last and not done.done():
            done.set_result(None)

    sub = await js.subscribe(
        f"o.*.{agent}",  # events, outcomes and fences: every subject of the stream
        stream=stream,
        cb=on_msg,
        ordered_consumer=True,
        pending_msgs_limit=65536,
    )
    try:
        await asyncio.wait_for(done, 120.0)
    finally:
        await sub.unsubscribe()
    return scan


# -- one configuration -------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    kills: int = 20
    rate: float = 400.0
    max_in_flight: int = 2000
    timeout: float = 0.5
    give_up: float = 15.0
    interval: float = 2.5
    warmup: float = 2.0
    period: float = 1.0
    configs: tuple[str, ...] = ("standby", "restart")
    work_dir: Path | None = None
    progress: bool = True


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


def _policy(standby: bool, options: Options) -> SupervisionPolicy:
    # A restart period shorter than the time between kills keeps every kill a first crash
    # (restart backoff at its initial value), and many restarts never escalate.
    return SupervisionPolicy(standby=standby, max_restarts=10_000, period=options.period)


async def _prepare(url: str, policy: SupervisionPolicy) -> None:
    async with connect(url, "o-bus-bench-recovery") as (_, js):
        await provision(js)
        catalogue = Catalogue([Catalogue.discover().get(AGENT)])
        await register_definitions(js, catalogue, policy)


def _attribute(
    records: list[RequestRecord], kill_times: list[float]
) -> tuple[list[dict[str, int]], int]:
    """Per kill: failed attempts (timeouts, error replies) after it and before the next kill;
    requests whose first failed attempt came after it, counted as re-sent-then-ok or failed.
    Also: failed attempts before the first kill."""
    per_kill = [
        {"resent_ok": 0, "failed": 0, "timeouts": 0, "error_replies": 0} for _ in kill_times
    ]
    unattributed = 0
    for record in records:
        first: int | None = None
        for when, kind in record.failures:
            index = _kill_before(kill_times, when)
            if index is None:
                unattributed += 1
                continue
            first = index if first is None else first
            per_kill[index]["timeouts" if kind == "timeout" else "error_replies"] += 1
        if first is not None:
            per_kill[first]["resent_ok" if record.ok_at is not None else "failed"] += 1
    return per_kill, unattributed


def _kill_before(kill_times: list[float], when: float) -> int | None:
    found = None
    for index, killed_at in enumerate(kill_times):
        if killed_at <= when:
            found = index
    return found


def _recoveries(
    records: list[RequestRecord],
    kills: list[tuple[float, int]],
    fences: list[Fence],
) -> list[float | None]:
    """Per kill, ms from the kill to the first reply sent by the process that replaced it."""
    successes = sorted((r.ok_at, r.seq) for r in records if r.ok_at is not None)
    result: list[float | None] = []
    for killed_at, victim in kills:
        own = [i for i, fence in enumerate(fences) if fence.pid == victim]
        if not own or own[-1] + 1 >= len(fences):
            result.append(None)
            continue
        threshold = fences[own[-1] + 1].events_before
        first = next((at for at, seq in successes if at > killed_at and seq > threshold), None)
        result.append(None if first is None else (first - killed_at) * 1000)
    return result


async def _measure(
    url: str,
    server_pid: int,
    standby: bool,
    options: Options,
    services: list[_Service],
    seen: set[int],
) -> ConfigResult:
    name = "standby" if standby else "restart"
    nc = await nats.connect(url, name="o-bus-bench-recovery", max_reconnect_attempts=0)
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
            await _until_answered(nc, f"{SERVICE_STATUS_PREFIX}{service.name}.status")
        load = SteadyLoad(nc, options.rate, options.timeout, options.give_up, options.max_in_flight)
        pids = {service.name: service.proc.pid for service in services}
        sampler = CpuSampler({**pids, "server": server_pid, "bench": os.getpid()})
        sampler.start()
        watch.counting_cpu = True
        started = time.monotonic()
        load.start()
        await asyncio.sleep(options.warmup)
        kills: list[tuple[float, int]] = []
        new_pids: list[int | None] = []
        actives: list[float | None] = []
        for number in range(1, options.kills + 1):
            try:
                await _until(lambda: watch.ready(standby), "readiness", READY_TIMEOUT, check)
            except BenchError as err:
                raise BenchError(
                    f"{err.message} after kill {number - 1}: {watch.describe()} (heartbeats)"
                ) from None
            last_kill = kills[-1][0] if kills else 0.0
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
            kills.append((killed_at, victim.pid))

            def replaced(victim_pid: int = victim.pid, at: float = killed_at) -> bool:
                active = watch.active()
                return active is not None and active.pid != victim_pid and load.last_ok > at

            await _until(replaced, f"recovery after kill {number}", RECOVERY_TIMEOUT, check)
            newcomer = watch.active()
            new_pids.append(newcomer.pid if newcomer else None)
            since = newcomer.active_since if newcomer else None
            actives.append((since - killed_at) * 1000 if since is not None else None)
            _say(
                options,
                f"[{name}] kill {number}/{options.kills}: pid {victim.pid} -> "
                f"{new_pids[-1]}, new active after {actives[-1] or 0:.0f} ms",
            )
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

    records = load.records
    per_kill, unattributed = _attribute(records, [at for at, _ in kills])
    recoveries = _recoveries(records, kills, scan.fences)
    results = [
        KillResult(
            victim_pid=victim,
            recovery_ms=round(ms, 1) if ms is not None else None,
            active_ms=round(active, 1) if active is not None else None,
            new_pid=new_pid,
            **counts,
        )
        for (_, victim), ms, active, new_pid, counts in zip(
            kills, recoveries, actives, new_pids, per_kill, strict=True
        )
    ]
    ok_ids = {r.request_id for r in records if r.ok_at is not None}
    problems = list(scan.problems)
    if missing := ok_ids - scan.request_ids:
        problems.append(f"{len(missing)} acknowledged requests are not in the log")
    rss: dict[str, float] = {}
    for process in watch.processes.values():
        for role in process.roles & {"active", "standby"}:
            rss[role] = max(rss.get(role, 0.0), round(process.max_rss / 2**20, 1))
    return ConfigResult(
        name=name,
        standby=standby,
        policy=_policy(standby, options).model_dump(),
        kills=results,
        requests=len(records),
        succeeded=len(ok_ids),
        peak_in_flight=load.peak_in_flight,
        shed=load.shed,
        seconds=round(seconds, 1),
        unattributed_failures=unattributed,
        rss_mb=rss,
        service_rss_mb={s.name: _rss_mb(s.proc.pid) for s in services},
        agent_processes=len(watch.processes),
        log_events=scan.events,
        log_problems=problems,
        cpu_percent=cpu,
        loadavg=[round(x, 2) for x in os.getloadavg()],
    )


async def _until_answered(nc: Client, subject: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            await nc.request(subject, b"", timeout=0.5)
            return
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise BenchError(f"no answer on {subject} within {READY_TIMEOUT}s") from None
            await asyncio.sleep(0.1)


def _kill_leftovers(seen: set[int], url: str) -> None:
    """SIGKILL agent processes of this run that outlived the supervisor (checked by cmdline)."""
    for pid in seen:
        if is_agent_process(pid, url):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


_RECOVERED = re.compile(rb"recovered at seq \d+ \(snapshot at \d+, (\d+) events replayed\)")


def _replayed(log_path: Path) -> list[int]:
    """Events each agent process replayed when it became active (from its log lines, which
    the agent processes write to the supervisor's output)."""
    try:
        text = log_path.read_bytes()
    except OSError:
        return []
    return [int(match.group(1)) for match in _RECOVERED.finditer(text)]


def measure(name: str, options: Options, work_dir: Path) -> ConfigResult:
    """Run one configuration (``standby`` or ``restart``) on a fresh server in ``work_dir``."""
    standby = CONFIGS[name]
    work_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(work_dir / "nats", port=0)
    services: list[_Service] = []
    seen: set[int] = set()
    server.start()
    try:
        asyncio.run(_prepare(server.url, _policy(standby, options)))
        services = [
            _Service(service, server.url, work_dir / f"{service}.log")
            for service in ("splitter", "supervisor")
        ]
        _say(options, f"[{name}] server {server.url}, work dir {work_dir}")
        server_pid = server.pid or 0
        result = asyncio.run(_measure(server.url, server_pid, standby, options, services, seen))
        result.replayed = _replayed(work_dir / "supervisor.log")
        return result
    finally:
        # The supervisor stops its agent processes when it gets SIGTERM.
        for service in reversed(services):
            service.stop(15.0)
        _kill_leftovers(seen, server.url)
        server.stop()


# -- report ------------------------------------------------------------------------------------


_CPU_ROLES = ("server", "splitter", "supervisor", "agents", "bench", "other")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _mb(value: float | None) -> str:
    return "-" if not value else f"{value:.0f}"


def render(results: list[ConfigResult], options: Options, machine: dict[str, Any]) -> str:
    lines = [
        f"Recovery after kill -9 of the active agent process under steady load "
        f"({options.rate:g} req/s open loop, timeout "
        f"{options.timeout:g} s, re-sent with the same id)",
        "",
        "| configuration | kills | recovery median ms | p90 | max | new active median ms "
        "| re-sent, then ok, per kill: median (max) | failed per kill: median (max) "
        "| RSS MB active / standby |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        s = result.summary()
        rss = result.rss_mb
        lines.append(
            f"| {result.name} | {s['recovered']}/{s['kills']} | {_ms(s['recovery_median_ms'])} "
            f"| {_ms(s['recovery_p90_ms'])} | {_ms(s['recovery_max_ms'])} "
            f"| {_ms(s['new_active_median_ms'])} "
            f"| {s['resent_ok_per_kill_median']:g} ({s['resent_ok_per_kill_max']}) "
            f"| {s['failed_per_kill_median']:g} ({s['failed_per_kill_max']}) "
            f"| {_mb(rss.get('active'))} / {_mb(rss.get('standby'))} |"
        )
    lines.append("")
    for result in results:
        cpu, s = result.cpu_percent, result.summary()
        lines.append(
            f"{result.name}: {result.requests} requests in {result.seconds:g} s, "
            f"{result.succeeded} succeeded ({result.requests - result.succeeded} never did), "
            f"at most {result.peak_in_flight} in flight, "
            f"{result.shed} not sent (too many in flight), {result.unattributed_failures} "
            f"failed attempts before the first kill; {result.agent_processes} agent processes; "
            f"log of "
            f"{result.log_events} events "
            + ("intact" if not result.log_problems else f"BROKEN: {result.log_problems}")
            + f"; events replayed by each new active: median {s['replayed_median']}, "
            f"max {s['replayed_max']}"
            + "; CPU % of one core: "
            + ", ".join(f"{role} {cpu[role]:.0f}" for role in _CPU_ROLES if role in cpu)
            + "; load average "
            f"{result.loadavg[0]:.2f}; RSS MB splitter {result.service_rss_mb.get('splitter')}, "
            f"supervisor {result.service_rss_mb.get('supervisor')}"
        )
    lines.append("")
    lines += _targets(results)
    lines.append(
        f"machine: {machine['cpus']} cpus, Python {machine['python']}, {machine['platform']}"
    )
    return "\n".join(lines)


def _targets(results: list[ConfigResult]) -> list[str]:
    lines = []
    for result in results:
        median = result.summary()["recovery_median_ms"]
        if result.standby and median is not None:
            verdict = "met" if median < TARGET_RECOVERY_MS else "NOT met"
            lines.append(
                f"target: recovery < {TARGET_RECOVERY_MS:g} ms median with a warm standby "
                f"(seed): {median:.1f} ms, {verdict}"
            )
    largest = max((max(r.rss_mb.values(), default=0.0) for r in results), default=0.0)
    verdict = "met" if largest < TARGET_RSS_MB else "NOT met"
    lines.append(
        f"target: < {TARGET_RSS_MB:g} MB per agent process: largest {largest:.1f} MB, {verdict}"
    )
    return lines


# -- command line ------------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _configs(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or any(name not in CONFIGS for name in names):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(CONFIGS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m o_bus.bench.recovery",
        description="Kill -9 the active agent process under steady load, with and without a "
        "warm standby: time to the next successful reply, failed requests, RSS.",
    )
    parser.add_argument(
        "--kills", type=_at_least_one, default=defaults.kills, help="kills per configuration"
    )
    parser.add_argument("--rate", type=_positive, default=defaults.rate, help="requests/s")
    parser.add_argument(
        "--max-in-flight",
        type=_at_least_one,
        default=defaults.max_in_flight,
        help="arrivals beyond this many requests in flight are not sent (counted as shed)",
    )
    parser.add_argument(
        "--timeout", type=_positive, default=defaults.timeout, help="seconds before a re-send"
    )
    parser.add_argument(
        "--give-up", type=_positive, default=defaults.give_up, help="seconds per request"
    )
    parser.add_argument(
        "--interval", type=_positive, default=defaults.interval, help="seconds between kills"
    )
    parser.add_argument(
        "--warmup", type=_positive, default=defaults.warmup, help="seconds of load before kill 1"
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
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
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
    machine["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    document = {
        "machine": machine,
        "options": {**asdict(options), "work_dir": str(options.work_dir or "")},
        "results": [result.as_dict() for result in results],
    }
    if args.save is not None:
        args.save.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2) if args.json else render(results, options, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
