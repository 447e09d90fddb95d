"""Landlock through its three system calls (ctypes): a read-only view of a few paths.

:func:`restrict` lets this thread (and every thread it starts later) read only under the
given paths, write only under others, bind no TCP port and connect only to the given TCP
ports, and (ABI 6+) signal or reach abstract unix sockets only inside its own domain. Rights
that the running kernel's ABI does not know are not handled, so they stay allowed; the
returned list says what is enforced. Irreversible.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable

from o_bus.errors import ConfigurationError

__all__ = ["LandlockUnavailable", "abi_version", "restrict"]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights by the ABI that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_WRITE_V1 = sum(1 << bit for bit in range(4, 13))  # remove_*, make_* (char, dir, reg, sock...)
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class LandlockUnavailable(ConfigurationError):
    """The kernel has no Landlock (or refused the ruleset); the message says which."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _call(number: int, *args: object) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI (0: none, or disabled at boot)."""
    try:
        return _call(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise


def _fs_rights(abi: int) -> int:
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _WRITE_V1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(
    read: Iterable[str], write: Iterable[str], connect_ports: Iterable[int] = ()
) -> list[str]:
    """Confine this thread: read/execute under ``read``, everything under ``write``, TCP
    connect only to ``connect_ports``. Paths that do not exist are skipped. Returns what is
    enforced; raises :class:`LandlockUnavailable` when nothing could be."""
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable("the kernel has no Landlock (or it is disabled at boot)")
    all_fs = _fs_rights(abi)
    read_only = EXECUTE | READ_FILE | READ_DIR
    attr = _RulesetAttr(handled_access_fs=all_fs)
    enforced = [
        f"landlock ABI {abi}: files readable only under the allowed paths, writable "
        "only under the writable ones"
    ]
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        enforced.append("landlock: no TCP bind; TCP connect only to the bus port")
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        enforced.append("landlock: no signals or abstract unix sockets outside the sandbox")
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else 8
    try:
        ruleset = _call(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    except OSError as err:
        raise LandlockUnavailable(f"landlock_create_ruleset failed: {err}") from err
    try:
        for paths, rights in ((read, read_only), (write, all_fs)):
            for path in paths:
                _add_path(ruleset, path, rights)
        if abi >= 4:
            for port in connect_ports:
                rule = _NetPort(allowed_access=_NET_CONNECT_TCP, port=port)
                _call(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, ctypes.byref(rule), 0)
        _call_prctl_no_new_privs()
        _call(_SYS_RESTRICT_SELF, ruleset, 0)
    except OSError as err:
        raise LandlockUnavailable(f"landlock refused the ruleset: {err}") from err
    finally:
        os.close(ruleset)
    return enforced


def _add_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            rights &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # file rights only
        rule = _PathBeneath(allowed_access=rights, parent_fd=fd)
        _call(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)


def _call_prctl_no_new_privs() -> None:
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
