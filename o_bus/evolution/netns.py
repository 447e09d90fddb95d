"""No network for a candidate but the bus: its own network namespace and a forwarder.

Inside the sandbox, :func:`isolate_network` moves the process into a new network namespace
(with a new user namespace when not root) that has only a loopback interface. When the
parent runs a :class:`~o_bus.evolution.bus_broker.BusBroker`, :func:`listen_for_bus` binds
``127.0.0.1:<bus port>`` inside that namespace and :func:`start_forwarder` carries each
connection to it over the broker's unix socket, which the parent connects to the NATS
server and nowhere else. A socket belongs to the namespace it was created in, so nothing the
candidate creates reaches another address.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading

from o_bus.errors import ConfigurationError

__all__ = ["NetworkUnavailable", "isolate_network", "listen_for_bus", "start_forwarder"]

_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_CHUNK = 256 * 1024


class NetworkUnavailable(ConfigurationError):
    """The kernel refused a new network namespace; the message says why."""


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def isolate_network() -> str:
    """Enter a new network namespace with loopback up; return what was done."""
    uid, gid = os.getuid(), os.getgid()
    try:
        if uid == 0:
            _unshare(_CLONE_NEWNET)
            how = "network namespace"
        else:  # unprivileged: a user namespace gives the rights to make the network one
            _unshare(_CLONE_NEWUSER | _CLONE_NEWNET)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
            how = "user and network namespace"
        _loopback_up()
    except OSError as err:
        raise NetworkUnavailable(f"no network namespace: {err}") from err
    return f"{how}: loopback only"


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request + b"\0" * 22)[:18])
        fcntl.ioctl(
            sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags[1] | _IFF_UP) + b"\0" * 22
        )


def listen_for_bus(port: int) -> socket.socket:
    """A listening socket on ``127.0.0.1:port`` in this (new) namespace."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    return listener


def start_forwarder(listener: socket.socket, broker_path: str) -> threading.Thread:
    """Carry each connection to ``listener`` to the broker's unix socket, in daemon threads."""
    thread = threading.Thread(
        target=_accept, args=(listener, broker_path), name="o-bus-bus-forwarder", daemon=True
    )
    thread.start()
    return thread


def _accept(listener: socket.socket, broker_path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(broker_path)
        except OSError:
            client.close()
            upstream.close()
            continue
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.shutdown(socket.SHUT_RD)
