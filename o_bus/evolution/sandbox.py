"""Process isolation for candidate code: resource limits, no child processes, a watchdog.

The parent starts a candidate with :func:`spawn_sandboxed`, which applies the resource limits
from outside (``prlimit``) and runs the program under :mod:`o_bus.evolution.sandboxed`, so the
candidate enters the sandbox (:func:`enter_sandbox`) before any of its own code runs. A
:class:`Watchdog` kills it by PID when it stops showing signs of life. See docs/sandbox.md for
what this protects against and what it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import ConfigurationError
from o_bus.evolution.boundary import (
    ACCESS_ENV,
    Boundary,
    SandboxAccess,
    access_from_env,
    enter_boundary,
    sandbox_uid,
    start_bus,
)
from o_bus.evolution.bus_broker import BusBroker
from o_bus.evolution.sandbox_relays import start_relays
from o_bus.evolution.seccomp import (
    SeccompUnavailable,
    install_no_process_filter,
    preload,
    seccomp_mode,
)

__all__ = [
    "LIMITS_ENV",
    "SandboxLimits",
    "SandboxReport",
    "Watchdog",
    "current_report",
    "enter_sandbox",
    "idle_scheduling",
    "limits_from_env",
    "spawn_sandboxed",
    "spec_files",
]

log = logging.getLogger(__name__)
LIMITS_ENV = "O_BUS_SANDBOX_LIMITS"
MiB = 1024 * 1024

# Audit events that start a process. `pty.spawn` goes through os.forkpty; listed for clarity.
REFUSED_AUDIT_EVENTS = frozenset(
    {
        "os.system",
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "pty.spawn",
    }
)

_BARE_ENV = frozenset({"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH"})


class SandboxLimits(BaseModel):
    """The limits a candidate process runs under."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    memory_bytes: int = Field(default=512 * MiB, gt=0, description="RLIMIT_AS: address space")
    cpu_seconds: int = Field(default=3600, gt=0, description="RLIMIT_CPU: total CPU time")
    open_files: int = Field(default=256, gt=0, description="RLIMIT_NOFILE")
    nice: int = Field(default=10, ge=0, le=19, description="scheduling niceness")
    idle_scheduling: bool = Field(
        default=False,
        description="run under SCHED_IDLE: only on CPU time no other process wants "
        "(where refused, niceness 19 instead)",
    )
    no_child_processes: bool = Field(default=True, description="refuse fork, exec and spawn")
    wall_clock_seconds: float = Field(
        default=2.0, gt=0, description="the watchdog's hard limit without a sign of life"
    )
    boundary: bool = Field(
        default=True,
        description="own network namespace, unprivileged uid, Landlock (see boundary.py)",
    )
    uid: int = Field(default=65534, ge=1, description="the uid to run as when started as root")

    def rlimits(self) -> dict[int, tuple[int, int]]:
        """(soft, hard) per resource. CPU: SIGXCPU at the limit, SIGKILL one second later."""
        return {
            resource.RLIMIT_AS: (self.memory_bytes, self.memory_bytes),
            resource.RLIMIT_CPU: (self.cpu_seconds, self.cpu_seconds + 1),
            resource.RLIMIT_NOFILE: (self.open_files, self.open_files),
            resource.RLIMIT_CORE: (0, 0),
        }


class SandboxReport(BaseModel):
    """Which isolation mechanisms are active in this process, stated as checked."""

    model_config = ConfigDict(frozen=True)
    pid: int
    limits: SandboxLimits
    rlimits: dict[str, list[int]] = Field(description="resource -> [soft, hard], read back")
    nice: int
    seccomp: bool = Field(description="the no-process seccomp filter is installed")
    seccomp_rules: list[str] = []
    seccomp_error: str | None = None
    audit_hook: bool = Field(description="Python-level process creation raises PermissionError")
    boundary: Boundary | None = Field(default=None, description="network, uid, Landlock")
    mechanisms: list[str]

    def summary(self) -> str:
        missing = [f"seccomp unavailable: {self.seccomp_error}"] if self.seccomp_error else []
        missing += self.boundary.errors if self.boundary else []
        return ", ".join(self.mechanisms) + (
            f" (NOT in force: {'; '.join(missing)})" if missing else ""
        )


_report: SandboxReport | None = None


def current_report() -> SandboxReport | None:
    """The report of the sandbox this process entered, or None if it never did."""
    return _report


def limits_from_env(environ: Mapping[str, str] | None = None) -> SandboxLimits:
    """The limits the parent passed in ``$O_BUS_SANDBOX_LIMITS`` (defaults when unset)."""
    raw = (os.environ if environ is None else environ).get(LIMITS_ENV)
    return SandboxLimits.model_validate_json(raw) if raw else SandboxLimits()


def _refuse_process_creation(event: str, args: tuple[Any, ...]) -> None:
    if event in REFUSED_AUDIT_EVENTS:
        raise PermissionError(
            f"sandboxed candidate may not start processes ({event} refused); "
            "candidate code runs without child processes"
        )


def _read_rlimits() -> dict[str, list[int]]:
    names = {"RLIMIT_AS": resource.RLIMIT_AS, "RLIMIT_CPU": resource.RLIMIT_CPU}
    names |= {"RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_CORE": resource.RLIMIT_CORE}
    return {name: list(resource.getrlimit(res)) for name, res in names.items()}


def enter_sandbox(limits: SandboxLimits) -> SandboxReport:
    """Put this process under ``limits``; call it first thing. Irreversible.

    Sets the resource limits and niceness, then (if ``no_child_processes``) installs the
    seccomp filter and an audit hook that refuse process creation. A second call returns
    the first report. If seccomp cannot be installed, the audit hook alone remains and the
    report says so.
    """
    global _report
    if _report is not None:
        return _report
    for res, (soft, hard) in limits.rlimits().items():
        resource.setrlimit(res, (soft, hard))
    os.setpriority(os.PRIO_PROCESS, 0, limits.nice)
    mechanisms = [
        f"RLIMIT_AS={limits.memory_bytes}",
        f"RLIMIT_CPU={limits.cpu_seconds}s",
        f"RLIMIT_NOFILE={limits.open_files}",
        f"nice={limits.nice}",
    ]
    if limits.idle_scheduling:
        mechanisms.append(idle_scheduling(0))
    boundary: Boundary | None = None
    listener = None
    access = access_from_env()
    if limits.boundary:
        preload()
        boundary, listener = enter_boundary(access, limits.uid)
        mechanisms.extend(boundary.mechanisms())
    rules: list[str] = []
    error: str | None = None
    hooked = False
    if limits.no_child_processes:
        try:
            # Without a network namespace of its own, the process gets unix sockets only.
            no_netns = boundary is not None and boundary.network is None
            rules = install_no_process_filter(unix_sockets_only=no_netns)
        except SeccompUnavailable as err:
            error = str(err)
        if rules and seccomp_mode() != 2:
            rules, error = [], "filter loaded but /proc does not show seccomp filter mode"
        if rules:
            mechanisms.append(
                "seccomp: no fork/exec/non-thread clone; limits, signals, tracing kept to itself"
            )
            if no_netns:
                mechanisms.append("seccomp: no sockets but AF_UNIX (no network namespace)")
        sys.addaudithook(_refuse_process_creation)
        hooked = True
        mechanisms.append("audit hook: no subprocess/os.system/fork/exec/spawn")
    start_bus(listener, access)  # its threads start under every restriction above
    _report = SandboxReport(
        pid=os.getpid(),
        limits=limits,
        rlimits=_read_rlimits(),
        nice=os.getpriority(os.PRIO_PROCESS, 0),
        seccomp=bool(rules),
        seccomp_rules=rules,
        seccomp_error=error,
        audit_hook=hooked,
        boundary=boundary,
        mechanisms=mechanisms,
    )
    return _report


def apply_limits_from_outside(pid: int, limits: SandboxLimits) -> None:
    """Set ``pid``'s resource limits and niceness (the child repeats it for itself)."""
    for res, (soft, hard) in limits.rlimits().items():
        resource.prlimit(pid, res, (soft, hard))
    os.setpriority(os.PRIO_PROCESS, pid, limits.nice)
    if limits.idle_scheduling:
        idle_scheduling(pid)


def idle_scheduling(pid: int) -> str:
    """Put ``pid`` (0: this process) under SCHED_IDLE, so it runs only on CPU time that no
    normal process wants and never takes a core from live; where that is refused, the lowest
    priority (nice 19), said in the log. Returns what is in force, for the sandbox report."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except OSError as err:
        log.warning("SCHED_IDLE refused (%s): running at nice 19 instead", err)
        os.setpriority(os.PRIO_PROCESS, pid, 19)
        return "nice=19 (SCHED_IDLE refused)"


async def spawn_sandboxed(
    argv: Sequence[str],
    limits: SandboxLimits,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    inherit_env: bool = True,
    read: Sequence[Path | str] = (),
    workdir: Path | None = None,
    bus: str | None = None,
) -> asyncio.subprocess.Process:
    """Start ``python <argv>`` in the sandbox: ``argv`` is ``[-m MODULE | -c CODE | FILE, ...]``.

    The child's environment is ``os.environ`` (only ``PATH`` and the locale with
    ``inherit_env=False``, to keep credentials out) updated with ``env`` and the limits. The
    program runs under :mod:`o_bus.evolution.sandboxed`, which enters the sandbox before
    running it; ``enter_sandbox(limits_from_env())`` in the program returns that same report.

    Inside the boundary (``limits.boundary``) the child may read ``read`` (which must be
    readable by its uid) and read and write ``workdir`` (a folder of this run, handed to the
    sandbox's uid); with ``bus`` (a NATS URL) it reaches that server, and nothing else, through
    a :class:`~o_bus.evolution.bus_broker.BusBroker` run here until the child exits.
    """
    if not argv:
        raise ConfigurationError("spawn_sandboxed needs a program: -m MODULE, -c CODE or FILE")
    base = os.environ if inherit_env else {k: v for k, v in os.environ.items() if k in _BARE_ENV}
    broker: BusBroker | None = None
    brokers: list[BusBroker] = []
    extra: dict[str, str] = {}
    wanted = {**base, **(env or {})}
    if limits.boundary:
        uid = sandbox_uid(limits.uid)
        owner = uid if uid != os.getuid() else None
        if workdir is not None and uid != os.getuid():
            _hand_over(workdir, uid)
        if bus is not None:
            broker = await BusBroker(bus, owner=owner).start()
            brokers.append(broker)
        relayed, relays, extra = await start_relays(wanted, owner)
        brokers += relayed
        access = SandboxAccess(
            read=[str(path) for path in read],
            write=[str(workdir)] if workdir is not None else [],
            bus_socket=str(broker.path) if broker else None,
            bus_port=broker.port if broker else None,
            relays=relays,
        )
        extra[ACCESS_ENV] = access.model_dump_json()
    child_env = {**wanted, LIMITS_ENV: limits.model_dump_json(), **extra}
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "o_bus.evolution.sandboxed",
            *argv,
            env=child_env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
    except BaseException:
        for each in brokers:
            await each.close()
        raise
    with contextlib.suppress(ProcessLookupError):  # already exited: its return code says how
        apply_limits_from_outside(process.pid, limits)
    if brokers:
        task = asyncio.create_task(_close_after(process, brokers), name=f"brokers-{process.pid}")
        _BROKERS.add(task)
        task.add_done_callback(_BROKERS.discard)
    return process


_BROKERS: set[asyncio.Task[None]] = set()


async def _close_after(process: asyncio.subprocess.Process, brokers: list[BusBroker]) -> None:
    try:
        await process.wait()
    finally:
        for broker in brokers:
            await broker.close()


def spec_files(*specs: str | None) -> list[str]:
    """The ``.py`` files that ``file.py:attr`` definition specs name, for the sandbox to read
    (module specs are in the installed packages, readable anyway)."""
    files = [spec.partition(":")[0] for spec in specs if spec]
    return [os.path.abspath(file) for file in files if file.endswith(".py")]


def _hand_over(folder: Path, uid: int) -> None:
    """Make ``folder`` and what is in it the sandbox uid's (this process is root)."""
    os.chown(folder, uid, uid)
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


class Watchdog:
    """Kills a process by PID when no :meth:`beat` arrives within ``timeout`` seconds.

    A SCHED_IDLE process that is runnable but has had less than a quarter of the time on a
    CPU (``/proc/<pid>/schedstat``) is starved, not hung: on a busy machine it waits for a
    core live leaves idle, and the watchdog waits too. A loop is caught once a core is free
    (it then runs), a blocked process at once (it is not runnable).

    Create it inside a running event loop; it watches from a background task until it fires
    or :meth:`stop` is called. It holds a pidfd where the kernel offers one, so a recycled PID
    is never hit.
    """

    def __init__(self, pid: int, timeout: float) -> None:
        if timeout <= 0:
            raise ConfigurationError("watchdog timeout must be > 0")
        self.pid = pid
        self.timeout = timeout
        self.reason: str | None = None
        self._last_beat = time.monotonic()
        self._cpu_at_beat = 0.0
        self._fired = asyncio.Event()
        self._pidfd: int | None = None
        self._gone = False
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._gone = True
        except (OSError, AttributeError):
            pass  # no pidfd on this kernel: fall back to kill by PID
        self._cpu_at_beat = self._on_cpu()
        self._idle = self._idle_policy()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name=f"watchdog-{pid}")

    def beat(self) -> None:
        """Record a sign of life (for example, a heartbeat from the process)."""
        self._last_beat = time.monotonic()
        self._cpu_at_beat = self._on_cpu()
        self._idle = self._idle_policy()

    def _on_cpu(self) -> float:
        """Seconds the process (its main thread) has run on a CPU; 0 where unknown."""
        try:
            with open(f"/proc/{self.pid}/schedstat") as stat:
                return int(stat.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def _runnable(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                return stat.read().rsplit(") ", 1)[1].startswith("R")
        except (OSError, IndexError):
            return False

    def _idle_policy(self) -> bool:
        try:
            return os.sched_getscheduler(self.pid) == os.SCHED_IDLE
        except OSError:
            return False

    def silence(self) -> float:
        """Seconds since the last beat; 0 while a SCHED_IDLE process is starved: runnable,
        yet it ran less than a quarter of that time (on a busy host it waits for a core; a
        hung loop gets the core once it is free, and a blocked process is not runnable)."""
        wall = time.monotonic() - self._last_beat
        if self._idle and self._runnable() and self._on_cpu() - self._cpu_at_beat < wall / 4:
            return 0.0
        return wall

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    async def wait(self) -> str:
        """Wait until the watchdog fires; return the reason."""
        await self._fired.wait()
        assert self.reason is not None
        return self.reason

    async def stop(self) -> None:
        """Stop watching (the process is left alone). Idempotent."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._close()

    async def __aenter__(self) -> Watchdog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _watch(self) -> None:
        while True:
            silent = self.silence()
            if silent >= self.timeout:
                break
            await asyncio.sleep(max(0.1, self.timeout - silent))
        outcome = self._kill()
        self.reason = (
            f"no sign of life from pid {self.pid} for {silent:.2f} s while it could run "
            f"(limit {self.timeout:g} s): {outcome}"
        )
        self._fired.set()
        self._close()

    def _kill(self) -> str:
        if self._gone:
            return "it had already exited"
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return "it had already exited"
        return "killed with SIGKILL"

    def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
