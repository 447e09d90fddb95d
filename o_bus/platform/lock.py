"""One platform per data dir: ``o-bus up`` holds an exclusive lock on ``DATA_DIR/up.lock``.

The file names the holder (PID, start time, NATS URL) so that a second ``o-bus up`` can say
which platform is running. The lock is an ``flock``: the kernel drops it when the holder dies,
however it dies, so a stale file never blocks a new start. The embedded nats-server inherits
the locked descriptor, so the store stays locked until that server has exited too.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Final

from o_bus.errors import ConfigurationError

__all__ = ["LOCK_FILE", "DataDirLock", "DataDirLockedError"]

LOCK_FILE: Final = "up.lock"


class DataDirLockedError(ConfigurationError):
    """Another ``o-bus up`` (or a server it left shutting down) holds the data dir."""


class DataDirLock:
    """The exclusive lock of one data dir, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None
        self._holder: dict[str, Any] = {}

    @property
    def fd(self) -> int:
        """The locked descriptor (give it to children that must keep the lock while alive)."""
        if self._fd is None:
            raise ConfigurationError(f"{self.path} is not locked by this process")
        return self._fd

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataDirLockedError` naming the running platform."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirLockedError(
                f"{self.path.parent} is in use by another o-bus up ({_describe(holder)}); "
                "stop it first, or pick another --data-dir",
                details={"data_dir": str(self.path.parent), "holder": holder},
            ) from None
        self._fd = fd
        self._holder = {"pid": os.getpid(), "started_at": time.time(), "url": None}
        self._write()

    def record_url(self, url: str) -> None:
        """Name the platform's NATS URL in the lock file."""
        self._holder["url"] = url
        self._write()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self) -> None:
        data = json.dumps(self._holder).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return "holder unknown"
    started = holder.get("started_at")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        if isinstance(started, (int, float))
        else "at an unknown time"
    )
    alive = _alive(pid)
    text = f"pid {pid}, started {when}"
    if holder.get("url"):
        text += f", NATS {holder['url']}"
    if not alive:
        text += "; that process has exited and its nats-server is still shutting down"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
