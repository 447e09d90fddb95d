"""Process lineage on Linux: children that die with their parent, orphans that come home.

``o-bus up`` starts every child with a parent-death signal (``PR_SET_PDEATHSIG``), so a
``kill -9`` of ``up`` takes its services and its nats-server with it. It is also a child
subreaper (``PR_SET_CHILD_SUBREAPER``): agent processes orphaned by a dead supervisor become its
children, so that a standby supervisor can adopt them and ``up`` can reap them. An agent
process follows its lineage with :class:`ParentWatch`: reparented to ``up``, it takes ``up``'s
death as its own; reparented anywhere else, the platform is gone and it stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = [
    "PLATFORM_PID_ENV",
    "ParentWatch",
    "become_subreaper",
    "child_pids",
    "die_with_parent",
    "reap_orphans",
]

PLATFORM_PID_ENV: Final = "O_BUS_PLATFORM_PID"
"""Set by ``o-bus up`` for everything it starts: the PID of ``up`` itself."""

_PR_SET_PDEATHSIG: Final = 1
_PR_SET_CHILD_SUBREAPER: Final = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` for :mod:`subprocess`: the child gets ``signum`` when its parent dies.

    The parent-death signal survives ``exec``. (It fires when the thread that started the child
    exits, so start children from the main thread.) SIGKILL by default: a parent that died
    without stopping its children usually took the NATS server along, and a graceful stop that
    needs the server would hang; acknowledged work is in JetStream either way."""
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signum)

    return preexec


def become_subreaper() -> None:
    """Make this process the reaper of its descendants' orphans."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def child_pids() -> set[int]:
    """PIDs of this process's children (own and adopted orphans), from ``/proc``."""
    found: set[int] = set()
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def reap_orphans(known: set[int]) -> list[int]:
    """Reap the dead children not in ``known`` (orphans adopted as a subreaper); return them.

    Children in ``known`` are left to their own ``wait`` (``subprocess.Popen.poll``)."""
    reaped = []
    for pid in child_pids() - known:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped.append(pid)
    return reaped


class ParentWatch:
    """Tells an agent process when the platform that runs it is gone.

    ``check()`` is called periodically. The process starts as the child of a supervisor; if the
    supervisor dies it is reparented to ``up`` (the subreaper), and arms a parent-death signal
    there. Reparented to any other process, ``up`` is dead too: ``check()`` returns False.
    Without ``$O_BUS_PLATFORM_PID`` (a supervisor run on its own) it always returns True."""

    def __init__(self, on_parent_death: int = signal.SIGKILL) -> None:
        value = os.environ.get(PLATFORM_PID_ENV, "")
        self.platform = int(value) if value.isdigit() else None
        self.parent = os.getppid()
        self.signum = on_parent_death
        self._armed = False

    def check(self) -> bool:
        if self.platform is None:
            return True
        parent = os.getppid()
        if parent == self.parent:
            return True
        if parent != self.platform:
            return False
        if not self._armed:
            _prctl(_PR_SET_PDEATHSIG, self.signum)
            self._armed = True
            return os.getppid() == self.platform  # it may have died just before
        return True
