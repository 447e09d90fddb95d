"""ChildProcess: the one way services, benchmark stacks and tests start and stop children."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from support import eventually

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


async def _wait_ready(child: ChildProcess) -> None:
    log_path = child.log_path
    assert log_path is not None

    async def ready() -> bool:
        assert child.running(), child.exited()
        return "ready" in log_path.read_text()

    await eventually(ready, what=f"{child.name} to start")


async def test_stop_terminates_and_keeps_the_output(tmp_path: Path) -> None:
    child = _start(tmp_path, "polite")
    await _wait_ready(child)
    assert child.exited() is None
    assert child.stop(timeout=30) == -signal.SIGTERM
    said = child.exited()
    assert said is not None
    assert said.startswith(f"polite exited with code {-signal.SIGTERM}:")
    assert said.endswith("ready")


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    child = _start(tmp_path, "stubborn", "stubborn")
    await _wait_ready(child)
    assert child.stop(timeout=0.2) == -signal.SIGKILL


async def test_stop_all_stops_every_child(tmp_path: Path) -> None:
    children = [_start(tmp_path, "a"), _start(tmp_path, "b", "stubborn")]
    for child in children:
        await _wait_ready(child)
    stop_all(children, timeout=0.5)
    assert [child.proc.returncode for child in children] == [-signal.SIGTERM, -signal.SIGKILL]


def test_a_child_that_exits_by_itself_says_so(tmp_path: Path) -> None:
    child = ChildProcess("quick", [sys.executable, "-c", "raise SystemExit(3)"], None)
    assert child.wait(timeout=30) == 3
    assert child.exited() == "quick exited with code 3"
    assert child.kill() == 3  # already gone: nothing to kill
