"""Sandboxed processes run under SCHED_IDLE, and the watchdog does not take a process
starved of CPU for a hung one. Real processes pinned to one core."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support import eventually

from o_bus.evolution.sandbox import Watchdog, idle_scheduling

BUSY = "while True: pass"


@pytest.fixture
def busy_pair() -> Iterator[tuple[int, int]]:
    """Two busy loops on the same core: (normal, idle) pids; killed after the test."""
    core = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        for proc in procs:
            os.sched_setaffinity(proc.pid, {core})
        yield procs[0].pid, procs[1].pid
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_idle_scheduling_puts_a_process_under_sched_idle(busy_pair: tuple[int, int]) -> None:
    _, idle = busy_pair
    assert idle_scheduling(idle) == "SCHED_IDLE"
    assert os.sched_getscheduler(idle) == os.SCHED_IDLE


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A process blocked in a sleep (as a hung candidate would be)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


async def test_the_watchdog_does_not_count_time_starved_of_cpu(
    busy_pair: tuple[int, int], sleeper: int
) -> None:
    _, idle = busy_pair
    idle_scheduling(idle)
    starved, hung = Watchdog(idle, 60.0), Watchdog(sleeper, 60.0)
    try:

        async def silent_for_a_while() -> bool:
            # A blocked process is not starved: its silence counts in full.
            return hung.silence() >= 1.5

        await eventually(silent_for_a_while, what="the blocked process to be silent 1.5 s")
        # Meanwhile the idle loop was runnable but waited for the core: no silence counts.
        assert starved.silence() == 0.0
    finally:
        await starved.stop()
        await hung.stop()
