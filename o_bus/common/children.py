"""Child processes started by a parent that stops them: services under ``o-bus up``, the
benchmark's stacks, the tests' bus services.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the parent, which
then stops its children in order. Stopping is by PID: SIGTERM, then SIGKILL after a grace time.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ChildProcess", "stop_all"]

LOG_TAIL_LINES = 15


class ChildProcess:
    """A child process; its output appended to ``log_path``, or inherited when that is None."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] | None = log_path.open("ab") if log_path is not None else None
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def exited(self) -> str | None:
        """None while the child runs; else what happened, with the end of its log."""
        if self.running():
            return None
        said = f"{self.name} exited with code {self.proc.returncode}"
        if self.log_path is None:
            return said
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
        return said + ":\n" + "\n".join(tail)

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM); see :meth:`wait`."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL the child now; return its exit status."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        return self._reap()

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the child to end, then SIGKILL it; return its
        exit status."""
        try:
            self.proc.wait(max(0.1, timeout))
        except subprocess.TimeoutExpired:
            return self.kill()
        return self._reap()

    def stop(self, timeout: float) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; return the exit status."""
        self.terminate()
        return self.wait(timeout)

    def _reap(self) -> int:
        status = self.proc.wait()
        if self._log is not None:
            self._log.close()
        return status


def stop_all(children: Iterable[ChildProcess], timeout: float) -> None:
    """SIGTERM every child at once, then wait for them within one shared ``timeout``
    (SIGKILL for those still running then)."""
    children = list(children)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait(deadline - time.monotonic())
