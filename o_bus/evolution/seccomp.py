"""A seccomp filter that forbids creating processes, installed through libseccomp via ctypes.

Running as root, ``RLIMIT_NPROC`` does not stop ``fork``, so the kernel's syscall filter does.
Threads stay allowed: ``clone`` is refused only without ``CLONE_THREAD``, and ``clone3`` (whose
flags sit in a struct the filter cannot read) fails with ``ENOSYS`` so glibc falls back to
``clone``. The same filter keeps a root candidate from raising its own limits and from
signalling or tracing other processes. It applies to every thread (``TSYNC``) and cannot be
removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import socket
from pathlib import Path

from o_bus.errors import ConfigurationError

__all__ = [
    "BLOCKED_SYSCALLS",
    "SIGNAL_SYSCALLS",
    "SeccompUnavailable",
    "install_no_process_filter",
    "preload",
    "seccomp_mode",
]

_ACT_ALLOW = 0x7FFF0000
_CMP_NE = 1
_CMP_MASKED_EQ = 7
_ATTR_CTL_TSYNC = 4
_CLONE_THREAD = 0x00010000
_LIBRARY_CANDIDATES = ("libseccomp.so.2", "/usr/lib/x86_64-linux-gnu/libseccomp.so.2")

# Refused outright (EPERM), whatever their arguments. ptrace and process_vm_* would let the
# candidate write into another process's memory (the live agent's, as root); setrlimit,
# setpriority and the scheduler calls would let a root candidate undo its own limits.
BLOCKED_SYSCALLS = (
    "fork",
    "vfork",
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "setrlimit",
    "setpriority",
    "sched_setscheduler",
    "sched_setattr",
    "tkill",
    "pidfd_send_signal",
    # its operations (opening sockets among them) are not system calls the filter sees
    "io_uring_setup",
)
# Signals may go to this process only (as root it could otherwise kill the live agent or the
# process that watches it).
SIGNAL_SYSCALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


class SeccompUnavailable(ConfigurationError):
    """libseccomp is missing or the kernel refused the filter; the message says which."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@functools.cache
def _library() -> ctypes.CDLL:
    errors = []
    for name in [*_LIBRARY_CANDIDATES, "find_library"]:
        if name == "find_library":  # slow (runs ldconfig or a compiler): only when needed
            name = ctypes.util.find_library("seccomp") or ""
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as err:
            errors.append(str(err))
            continue
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        return lib
    raise SeccompUnavailable("libseccomp not found: " + "; ".join(errors or ["no candidates"]))


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompUnavailable(f"{what} failed: {errno.errorcode.get(-result, -result)}")


def _syscall(lib: ctypes.CDLL, name: str) -> int:
    number = int(lib.seccomp_syscall_resolve_name(name.encode()))
    if number < 0:
        raise SeccompUnavailable(f"libseccomp does not know syscall {name!r}")
    return number


def _rules(pid: int, unix_sockets_only: bool) -> list[tuple[str, int, list[_ArgCmp], str]]:
    """(syscall, errno, conditions that must all hold, description) for each rule."""
    eperm = errno.EPERM
    rules: list[tuple[str, int, list[_ArgCmp], str]] = [
        (name, eperm, [], f"{name}: EPERM") for name in BLOCKED_SYSCALLS
    ]
    if unix_sockets_only:  # where no network namespace could be made
        rules.append(
            (
                "socket",
                errno.EACCES,
                [_ArgCmp(0, _CMP_NE, socket.AF_UNIX, 0)],
                "socket of any family but AF_UNIX: EACCES",
            )
        )
    rules.append(
        (
            "clone",
            eperm,
            [_ArgCmp(0, _CMP_MASKED_EQ, _CLONE_THREAD, 0)],
            "clone without CLONE_THREAD: EPERM",
        )
    )
    rules.append(("clone3", errno.ENOSYS, [], "clone3: ENOSYS"))
    rules.append(
        ("prlimit64", eperm, [_ArgCmp(2, _CMP_NE, 0, 0)], "prlimit64 that sets a limit: EPERM")
    )
    for name in SIGNAL_SYSCALLS:
        rules.append(
            (name, eperm, [_ArgCmp(0, _CMP_NE, pid, 0)], f"{name} to another process: EPERM")
        )
    return rules


def preload() -> None:
    """Load libseccomp now, while the process may still read files and run programs."""
    with contextlib.suppress(SeccompUnavailable):
        _library()


def install_no_process_filter(
    pid: int | None = None, *, unix_sockets_only: bool = False
) -> list[str]:
    """Install the filter on every thread of this process; return the rules it holds.

    ``pid`` is this process's id (signals to any other are refused). Raises
    :class:`SeccompUnavailable` when it cannot install the filter (then nothing was installed).
    """
    lib = _library()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    installed: list[str] = []
    try:
        _check(lib.seccomp_attr_set(ctx, _ATTR_CTL_TSYNC, 1), "seccomp_attr_set(TSYNC)")
        for name, code, conditions, description in _rules(
            os.getpid() if pid is None else pid, unix_sockets_only
        ):
            array = (_ArgCmp * len(conditions))(*conditions) if conditions else None
            result = lib.seccomp_rule_add_array(
                ctx, _errno_action(code), _syscall(lib, name), len(conditions), array
            )
            _check(result, f"rule for {name}")
            installed.append(description)
        _check(lib.seccomp_load(ctx), "seccomp_load")
    finally:
        lib.seccomp_release(ctx)
    return installed


def seccomp_mode() -> int:
    """This process's seccomp mode from /proc (0 none, 1 strict, 2 filter; -1 unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1
