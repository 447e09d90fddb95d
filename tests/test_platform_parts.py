"""The parts of `o-bus up` that need no NATS: the data-dir lock and service restart intensity."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o_bus.platform.lock import DataDirLock, DataDirLockedError
from o_bus.platform.service_set import ServiceEscalationError, ServiceSet
from o_bus.supervision.records import SupervisionPolicy


def test_a_locked_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    first.record_url("nats://127.0.0.1:4999")
    with pytest.raises(DataDirLockedError) as refused:
        DataDirLock(tmp_path).acquire()
    assert f"pid {os.getpid()}" in refused.value.message
    assert "nats://127.0.0.1:4999" in refused.value.message
    first.release()
    again = DataDirLock(tmp_path)
    again.acquire()  # released: free again
    again.release()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from o_bus.platform.lock import "
            "DataDirLock; DataDirLock(Path(sys.argv[1])).acquire(); print('locked', flush=True);"
            " time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(DataDirLockedError):
            DataDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    lock = DataDirLock(tmp_path)
    lock.acquire()  # no stale lock after a kill -9
    lock.release()


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command)


def _check_for(services: ServiceSet, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        services.check()
        time.sleep(0.01)


def test_a_service_that_keeps_dying_escalates_instead_of_looping() -> None:
    said: list[str] = []
    policy = SupervisionPolicy(max_restarts=2, period=60, backoff_initial=0.01, backoff_max=0.02)
    services = ServiceSet(_spawn, policy, say=said.append)
    services.add("splitter-1", [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ServiceEscalationError) as escalated:
        _check_for(services, 30.0)
    assert "splitter-1 exited 3 times within 60s" in escalated.value.message
    assert "last exit code 3" in escalated.value.message
    assert sum("restarted" in line for line in said) == 2, said


def test_a_service_that_dies_is_restarted_and_stop_ends_it() -> None:
    said: list[str] = []
    policy = SupervisionPolicy(backoff_initial=0.01, backoff_max=0.02)
    services = ServiceSet(_spawn, policy, say=said.append)
    slot = services.add("health-1", [sys.executable, "-c", "import time; time.sleep(60)"])
    first = slot.pid
    assert slot.proc is not None
    slot.proc.kill()
    deadline = time.monotonic() + 30
    while slot.pid == first and time.monotonic() < deadline:
        services.check()
        time.sleep(0.01)
    assert slot.pid != first
    assert slot.exits == [-9]
    services.stop(timeout=5)
    assert slot.proc is not None
    assert slot.proc.returncode is not None
