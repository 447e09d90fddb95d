"""CPU priority of work that must never slow live traffic (searches, their evaluations)."""

from __future__ import annotations

import contextlib
import os

__all__ = ["idle_priority"]


def idle_priority(pid: int = 0) -> bool:
    """Move ``pid`` (0: the calling thread, and the threads and processes it starts later)
    to ``SCHED_IDLE``, where it runs only when a core has nothing else to do; else to nice 19.
    Returns whether ``SCHED_IDLE`` took effect."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(pid, policy, os.sched_param(0))
            return True
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    return False
