"""ChildProcess: the one way services, benchmark stacks and tests start and stop children."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from o_bus.common.children import ChildProcess, stop_all

# Says it is ready, then waits for a signal (or ignores SIGTERM when asked to).
CHILD = """
import signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _start(tmp_path: Path, name: str, mode: str = "polite") -> ChildProcess:
    return ChildProcess(name, [sys.executable, "-c", CHILD, mode], tmp_path / f"{name}.log")


def _wait_ready(child: ChildProcess) -> None:
    assert child.log_path is not None
    while "ready" not in child.log_path.read_text():
        assert child.running(), child.exited()
        time.sleep(0.01)  # poll, not a wait for something to happen in a given time


def test_stop_terminates_and_keeps_the_output(tmp_path: Path) -> None:
    child = _start(tmp_path, "polite")
    _wait_ready(child)
    assert child.exited() is None
    assert child.stop(timeout=30) == -signal.SIGTERM
    said = child.exited()
    assert said is not None
    assert said.startswith(f"polite exited with code {-signal.SIGTERM}:")
    assert said.endswith("ready")


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    child = _start(tmp_path, "stubborn", "stubborn")
    _wait_ready(child)
    assert child.stop(timeout=0.2) == -signal.SIGKILL


def test_stop_all_stops_every_child(tmp_path: Path) -> None:
    children = [_start(tmp_path, "a"), _start(tmp_path, "b", "stubborn")]
    for child in children:
        _wait_ready(child)
    stop_all(children, timeout=0.5)
    assert [child.proc.returncode for child in children] == [-signal.SIGTERM, -signal.SIGKILL]


def test_a_child_that_exits_by_itself_says_so(tmp_path: Path) -> None:
    child = ChildProcess("quick", [sys.executable, "-c", "raise SystemExit(3)"], None)
    assert child.wait(timeout=30) == 3
    assert child.exited() == "quick exited with code 3"
    assert child.kill() == 3  # already gone: nothing to kill
