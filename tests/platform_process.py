"""`o-bus up` as a real process for tests, and the processes it runs.

Every process of one platform (services, nats-server, agents) inherits ``O_BUS_PLATFORM_PID``
from `up`, so the test finds them all again from `/proc` and, at teardown, kills by PID any
that survived; nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from support import WAIT_SECONDS

from o_bus.platform.lineage import PLATFORM_PID_ENV
from o_bus.server.embedded import find_nats_server

__all__ = ["UpProcess", "pids_with_env", "platform_pids"]

_UP_LINE = re.compile(r"O is up\. NATS: (\S+)")


def pids_with_env(name: str, value: str) -> set[int]:
    """Live processes whose initial environment has ``name=value`` (zombies have none)."""
    wanted = f"{name}={value}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.add(int(entry))
    return found


def platform_pids(up_pid: int) -> set[int]:
    """Every live process started (directly or not) by the `o-bus up` with PID ``up_pid``."""
    return pids_with_env(PLATFORM_PID_ENV, str(up_pid))


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class UpProcess:
    """One `o-bus up --data-dir DIR --port 0 ...` child process; output in ``DIR.log``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: IO[bytes] | None = None
        self._offset = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "O_BUS_NATS_URL"}
        self._log = self.log_path.open("ab")
        self._offset = self._log.tell()
        command = [sys.executable, "-m", "o_bus.cli.main", "up", "--data-dir", str(self.data_dir)]
        command += ["--port", "0", "--metrics-port", "0", "--console-port", "0", *self.args]
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        return self.proc

    def wait_up(self, timeout: float = WAIT_SECONDS * 2) -> str:
        """Block until `up` says it is up; return its NATS URL."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (match := _UP_LINE.search(self.output())) is not None:
                self.url = match.group(1)
                return self.url
            assert self.proc.poll() is None, f"o-bus up exited:\n{self.output()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"o-bus up not up in {timeout}s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        """What this run of `up` printed (the log file may hold earlier runs too)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def children(self, service: str) -> list[int]:
        """PIDs of the running ``o-bus run SERVICE`` processes of this platform."""
        return sorted(
            pid for pid in platform_pids(self.pid) if command_line(pid)[3:5] == ["run", service]
        )

    def server_pid(self) -> int | None:
        """The PID of the platform's nats-server, None while there is none."""
        found = [p for p in platform_pids(self.pid) if command_line(p)[:1] == [self._server]]
        return found[0] if found else None

    @property
    def _server(self) -> str:
        return str(find_nats_server())

    def close(self) -> None:
        """Kill `up` and whatever of its platform is left, by PID."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            for pid in _until_gone(lambda: platform_pids(self.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()


def _until_gone(probe: object) -> Iterator[int]:
    assert callable(probe)
    deadline = time.monotonic() + 10.0
    while (left := probe()) and time.monotonic() < deadline:
        yield from left
        time.sleep(0.1)
