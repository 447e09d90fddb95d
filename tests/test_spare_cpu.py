"""Evaluations start only on CPU the rest of the machine leaves idle: readings of /proc over
fixed figures, and the gate against real busy processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support import eventually

from o_bus.evolution.search.evaluate.spare_cpu import SpareCpu, busy_seconds, process_seconds

SPIN = "while True: pass"


class Clock:
    """Busy seconds of the machine and of each process, moved by hand."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.used: dict[int, float] = {}

    def spend(self, seconds: float, pid: int | None = None) -> None:
        self.busy += seconds
        if pid is not None:
            self.used[pid] = self.used.get(pid, 0.0) + seconds


def test_the_readings_of_proc_grow_with_work() -> None:
    import os

    before_machine, before_me = busy_seconds(), process_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert busy_seconds() > before_machine
    assert before_me is not None
    assert (process_seconds(os.getpid()) or 0.0) > before_me
    assert process_seconds(2**22 + 12345) is None  # no such process


def test_the_pools_own_evaluations_do_not_count_as_others() -> None:
    clock = Clock()
    times = iter(float(t) for t in range(100))  # one second between readings
    gate = SpareCpu(
        0.5, cores=2, busy=lambda: clock.busy, used=clock.used.get, clock=lambda: next(times)
    )
    assert gate.others({7}) is None  # the first reading only starts a window
    clock.spend(1.8, pid=7)  # one second later: 1.8 cores, all of them the pool's evaluation
    assert gate.others({7}) == pytest.approx(0.0)
    clock.spend(1.8)  # the next second: someone else's
    assert gate.others({7}) == pytest.approx(1.8)
    clock.spend(0.5, pid=8)  # an evaluation started within the window counts from its start
    assert gate.others({7, 8}) == pytest.approx(0.0)


@pytest.fixture
def spinners() -> Iterator[list[subprocess.Popen[bytes]]]:
    import os

    started = [
        subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


async def test_the_gate_waits_while_others_keep_every_core_busy(
    spinners: list[subprocess.Popen[bytes]],
) -> None:
    gate = SpareCpu(0.5)
    waiting = asyncio.ensure_future(gate.wait(set()))
    with pytest.raises(TimeoutError):  # an absence: watched for a while
        await asyncio.wait_for(asyncio.shield(waiting), 1.5)
    for proc in spinners:
        proc.kill()
        proc.wait()
    await eventually(lambda: _done(waiting), what="the gate to open once the cores are idle")


async def test_busy_processes_of_the_pool_itself_do_not_close_the_gate(
    spinners: list[subprocess.Popen[bytes]],
) -> None:
    gate = SpareCpu(0.5)
    await asyncio.wait_for(gate.wait({p.pid for p in spinners}), 10)


async def test_no_spare_cores_needed_never_waits() -> None:
    await asyncio.wait_for(SpareCpu(0.0).wait(set()), 0.1)


async def _done(task: asyncio.Future[None]) -> bool:
    return task.done()
