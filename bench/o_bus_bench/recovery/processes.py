"""The agent processes of a run, told apart by their command line, and their peak RSS."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from o_bus_bench.stack import AGENT

__all__ = ["is_agent_process", "kill_leftovers", "rss_mb"]


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


def rss_mb(pid: int) -> float:
    """Peak resident set size of ``pid`` in MB (0 where /proc is unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def kill_leftovers(seen: set[int], url: str, agent: str = AGENT) -> None:
    """SIGKILL ``agent``'s processes of this run that outlived their supervisor (checked by
    cmdline)."""
    for pid in seen:
        if is_agent_process(pid, url, agent):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
