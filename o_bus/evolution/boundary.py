"""The security boundary of the sandbox: no network but the bus, few files, no privileges.

:func:`enter_boundary` runs inside the candidate process before any candidate code, after
the resource limits and before the seccomp filter:

1. a network namespace of its own (:mod:`~o_bus.evolution.netns`), with the bus reachable
   through the parent's broker when the parent runs one;
2. an unprivileged uid (``SandboxLimits.uid``, nobody by default) when started as root and
   the interpreter is readable by it; otherwise uid 0 with every capability dropped;
3. Landlock (:mod:`~o_bus.evolution.landlock`): read-only access to the interpreter, the
   installed packages, shared libraries and the paths the parent named, write access to the
   run's own folder only.

What could not be applied is said in the :class:`Boundary` (and so in the sandbox report);
nothing is claimed that the kernel did not accept.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import socket
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from o_bus.errors import ConfigurationError
from o_bus.evolution import landlock, netns

__all__ = [
    "ACCESS_ENV",
    "Boundary",
    "Relay",
    "SandboxAccess",
    "access_from_env",
    "bus_url",
    "enter_boundary",
    "sandbox_uid",
    "start_bus",
]

ACCESS_ENV = "O_BUS_SANDBOX_ACCESS"
_SYSTEM_READ = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/share/zoneinfo",
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/etc/localtime",
    # name resolution of "localhost", so a TLS bus URL keeps the name its certificate has
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/dev/null",
    "/dev/urandom",
    "/proc/self",
)
_PACKAGES = ("o_bus", "o_bus.agents", "o_bus.handlers")
_CAPSET_V3 = 0x20080522


class Relay(BaseModel):
    """A service outside the sandbox reached at ``127.0.0.1:port`` inside it, through a
    broker socket of the parent (as the bus is)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    socket: str
    port: int


class SandboxAccess(BaseModel):
    """What one sandboxed run may reach, beyond the interpreter and installed packages."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    read: list[str] = Field(default=[], description="paths readable (read-only)")
    write: list[str] = Field(default=[], description="paths readable and writable")
    bus_socket: str | None = Field(default=None, description="the parent's broker socket")
    bus_port: int | None = Field(default=None, description="port of the bus inside")
    relays: list[Relay] = Field(
        default=[], description="other services reached through the parent (OTLP collector)"
    )


class Boundary(BaseModel):
    """What :func:`enter_boundary` put in force, and what it could not."""

    model_config = ConfigDict(frozen=True)
    network: str | None = None
    uid: int
    capabilities_dropped: bool = False
    landlock: list[str] = []
    read: list[str] = []
    write: list[str] = []
    errors: list[str] = []

    def mechanisms(self) -> list[str]:
        found = [f"network: {self.network}"] if self.network else []
        found.append(f"uid {self.uid}" + (", no capabilities" if self.capabilities_dropped else ""))
        return found + self.landlock


def access_from_env(environ: Mapping[str, str] | None = None) -> SandboxAccess:
    raw = (os.environ if environ is None else environ).get(ACCESS_ENV)
    return SandboxAccess.model_validate_json(raw) if raw else SandboxAccess()


_bus_port: int | None = None
_relay_listeners: list[tuple[socket.socket, str]] = []


def bus_url(url: str) -> str:
    """``url`` as this process reaches it: inside a boundary with a bus, the forwarder's
    address in the sandbox's own namespace (same scheme and credentials)."""
    if _bus_port is None:
        return url
    parts = urlsplit(url.split(",")[0].strip())
    userinfo = parts.netloc.rpartition("@")[0]
    host = "localhost" if parts.hostname == "localhost" else "127.0.0.1"
    netloc = (f"{userinfo}@" if userinfo else "") + f"{host}:{_bus_port}"
    return urlunsplit((parts.scheme or "nats", netloc, parts.path, "", ""))


def default_read_paths() -> list[str]:
    """The interpreter, its standard library, the installed packages and system libraries."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths |= {str(Path(sys.executable).resolve().parent), *_package_paths()}
    # installed packages on sys.path beyond the prefixes (PYTHONPATH, .pth files)
    paths |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return sorted(paths) + list(_SYSTEM_READ)


def _readable_by_others(path: str) -> bool:
    """Whether a uid other than the owner can reach ``path`` (every folder above it searchable
    by others, the path itself readable by others)."""
    current = Path(path).resolve()
    for folder in [*reversed(current.parents), current]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            return False
        needed = stat.S_IXOTH | (stat.S_IROTH if folder == current else 0)
        if mode & needed != needed:
            return False
    return True


def _drop_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last capability
    header = (ctypes.c_uint32 * 2)(_CAPSET_V3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def sandbox_uid(uid: int) -> int:
    """The uid a sandbox started by this process runs as: ``uid`` when this process is root
    and the interpreter and packages are readable by others; otherwise this process's uid."""
    if os.getuid() != 0:
        return os.getuid()
    interpreter = [sys.base_prefix, sys.prefix, *_package_paths()]
    return uid if all(_readable_by_others(path) for path in interpreter) else 0


def _package_paths() -> list[str]:
    paths: list[str] = []
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        paths.extend((spec.submodule_search_locations or []) if spec else [])
    return paths


def _drop_privileges(uid: int, errors: list[str]) -> tuple[int, bool]:
    if os.getuid() != 0:
        return os.getuid(), False
    if sandbox_uid(uid) == uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        return uid, True
    errors.append(
        f"uid 0 kept: the interpreter ({sys.base_prefix}) is not readable by uid {uid}; "
        "every capability is dropped instead"
    )
    try:
        _drop_capabilities()
    except OSError as err:
        errors.append(f"capabilities not dropped: {err}")
        return 0, False
    return 0, True


def enter_boundary(access: SandboxAccess, uid: int) -> tuple[Boundary, socket.socket | None]:
    """Apply the boundary to this (still single-threaded) process; return what is in force
    and the bus listener, for :func:`start_bus` once the seccomp filter is in place."""
    global _bus_port
    errors: list[str] = []
    network: str | None = None
    listener: socket.socket | None = None
    try:
        network = netns.isolate_network()
        if access.bus_socket and access.bus_port:
            listener = netns.listen_for_bus(access.bus_port)
            _bus_port = access.bus_port
            network += f"; the bus through the parent's broker at 127.0.0.1:{access.bus_port}"
        for relay in access.relays:
            _relay_listeners.append((netns.listen_for_bus(relay.port), relay.socket))
            network += f"; 127.0.0.1:{relay.port} through the parent's broker"
    except ConfigurationError as err:
        errors.append(str(err))
    read = [*default_read_paths(), *access.read]
    for path in [access.bus_socket, *(relay.socket for relay in access.relays)]:
        if path:
            read.append(str(Path(path).parent))
    new_uid, dropped = _drop_privileges(uid, errors)
    enforced: list[str] = []
    try:
        ports = [access.bus_port] if access.bus_port else []
        ports += [relay.port for relay in access.relays]
        enforced = landlock.restrict(read, access.write, ports)
    except (landlock.LandlockUnavailable, OSError) as err:
        errors.append(f"no landlock: {err}")
    boundary = Boundary(
        network=network,
        uid=new_uid,
        capabilities_dropped=dropped,
        landlock=enforced,
        read=read if enforced else [],
        write=list(access.write) if enforced else [],
        errors=errors,
    )
    return boundary, listener


def start_bus(listener: socket.socket | None, access: SandboxAccess) -> None:
    """Start carrying the bus listener's connections to the parent's broker."""
    if listener is not None and access.bus_socket:
        netns.start_forwarder(listener, access.bus_socket)
    for relay_listener, path in _relay_listeners:
        netns.start_forwarder(relay_listener, path)
