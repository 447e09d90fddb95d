"""The agent processes a supervisor watches: its own children, or adopted ones."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from o_bus.supervision.records import HOST_ENV, ProcessInfo

__all__ = ["AgentChild", "pid_alive", "spawn_agent"]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: trust the signal check
    return state not in (b"Z", b"X")


@dataclass(slots=True)
class AgentChild:
    """One agent process. ``proc`` is None for a process adopted from an earlier supervisor."""

    agent: str
    pid: int
    standby: bool
    started_at: float
    proc: asyncio.subprocess.Process | None = None
    holder: str = ""
    role: str = "starting"
    last_heartbeat: float = 0.0  # monotonic
    hung: bool = False
    exit_handled: bool = False
    kill_timer: asyncio.TimerHandle | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)  # the supervisor's host name

    def info(self) -> ProcessInfo:
        return ProcessInfo(
            pid=self.pid,
            host=self.host,
            standby=self.standby,
            started_at=self.started_at,
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)


async def spawn_agent(
    agent: str, url: str, *, standby: bool, extra_args: list[str], host: str | None = None
) -> AgentChild:
    command = [sys.executable, "-m", "o_bus.cli.main", "run", "agent", agent, "--nats", url]
    if standby:
        command.append("--standby")
    env = {**os.environ, HOST_ENV: host} if host is not None else None
    proc = await asyncio.create_subprocess_exec(
        *command, *extra_args, start_new_session=True, env=env
    )
    child = AgentChild(agent, proc.pid, standby, time.time(), proc=proc)
    if host is not None:
        child.host = host
    return child
