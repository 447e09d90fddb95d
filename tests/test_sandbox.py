"""The candidate sandbox with real child processes: limits, no child processes, the watchdog."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from pydantic import ValidationError

from o_bus.evolution.sandbox import SandboxLimits, SandboxReport, Watchdog, spawn_sandboxed

REFUSAL = "may not start processes"


async def run_child(
    code: str, limits: SandboxLimits | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``code`` sandboxed (with ``emit(**kw)`` to print a JSON line); return its exit
    code, its JSON output lines and its stderr."""
    process = await spawn_sandboxed(
        ["-c", PRINT + textwrap.dedent(code)],
        limits or SandboxLimits(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return process.returncode, lines, err.decode()


PRINT = "import json\ndef emit(**kw): print(json.dumps(kw), flush=True)\n"


async def test_report_states_what_is_active_and_limits_apply_inside_and_outside() -> None:
    limits = SandboxLimits(memory_bytes=300 * 1024 * 1024, open_files=64, nice=7)
    process = await spawn_sandboxed(
        [
            "-c",
            PRINT
            + textwrap.dedent("""
            import sys
            from o_bus.evolution.sandbox import enter_sandbox, limits_from_env
            from o_bus.evolution.seccomp import seccomp_mode
            report = enter_sandbox(limits_from_env())  # already entered: the same report
            emit(report=report.model_dump(mode="json"), mode=seccomp_mode())
            sys.stdin.readline()
            """),
        ],
        limits,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    line = json.loads(await process.stdout.readline())
    outside = resource.prlimit(process.pid, resource.RLIMIT_AS)
    process.stdin.close()
    assert await process.wait() == 0
    report = SandboxReport.model_validate(line["report"])
    assert report.pid == process.pid
    assert report.limits == limits
    assert report.rlimits["RLIMIT_AS"] == [limits.memory_bytes] * 2
    assert report.rlimits["RLIMIT_NOFILE"] == [64, 64]
    assert outside == (limits.memory_bytes, limits.memory_bytes)
    assert report.nice == 7
    assert report.audit_hook
    # Never claimed without the kernel agreeing: filter mode 2 in /proc iff seccomp is reported.
    assert report.seccomp == (line["mode"] == 2)
    assert report.seccomp or report.seccomp_error
    assert ("seccomp" in report.summary()) == (report.seccomp or bool(report.seccomp_error))


async def test_process_creation_is_refused_with_a_clear_error_while_threads_work() -> None:
    code, lines, err = await run_child(
        """
        import asyncio, os, pty, subprocess, sys, threading
        from concurrent.futures import ThreadPoolExecutor
        attempts = {
            "subprocess.run": lambda: subprocess.run(["true"]),
            "os.fork": os.fork,
            "os.system": lambda: os.system("true"),
            "os.execv": lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]),
            "os.posix_spawn": lambda: os.posix_spawn("/bin/true", ["true"], {}),
            "pty.spawn": lambda: pty.spawn(["true"]),
        }
        for name, attempt in attempts.items():
            try:
                attempt()
                emit(name=name, refused=None)
            except PermissionError as exc:
                emit(name=name, refused=str(exc))
        seen = []
        thread = threading.Thread(target=lambda: seen.append("thread"))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(4) as pool:
            seen.extend(pool.map(str, range(4)))
        async def resolve():
            return await asyncio.get_running_loop().getaddrinfo("127.0.0.1", 4222)
        seen.append(asyncio.run(resolve())[0][4][0])
        emit(threads=seen)
        """
    )
    assert code == 0, err
    refusals = {line["name"]: line["refused"] for line in lines if "name" in line}
    assert set(refusals) == {
        "subprocess.run",
        "os.fork",
        "os.system",
        "os.execv",
        "os.posix_spawn",
        "pty.spawn",
    }
    for name, message in refusals.items():
        assert message is not None, name
        assert REFUSAL in message, name
    assert lines[-1]["threads"] == ["thread", "0", "1", "2", "3", "127.0.0.1"]


async def test_seccomp_refuses_fork_and_exec_that_bypass_python() -> None:
    code, lines, err = await run_child(
        """
        import ctypes, sys
        from o_bus.evolution.sandbox import current_report
        libc = ctypes.CDLL(None, use_errno=True)
        pid = libc.fork()
        fork_errno = ctypes.get_errno()
        rc = libc.syscall(57)  # SYS_fork on x86-64: no glibc wrapper involved
        raw_errno = ctypes.get_errno()
        argv = (ctypes.c_char_p * 2)(b"/bin/true", None)
        exec_rc = libc.execv(b"/bin/true", argv)
        exec_errno = ctypes.get_errno()
        emit(seccomp=current_report().seccomp, fork=[pid, fork_errno], raw=[rc, raw_errno],
             exec=[exec_rc, exec_errno])
        """
    )
    assert code == 0, err
    result = lines[-1]
    if not result["seccomp"]:
        pytest.skip("seccomp is unavailable here; the audit hook alone is active")
    eperm = 1
    assert result["fork"] == [-1, eperm]
    assert result["raw"] == [-1, eperm]
    assert result["exec"] == [-1, eperm]


async def test_seccomp_keeps_a_root_candidate_from_undoing_limits_or_signalling_others() -> None:
    code, lines, err = await run_child(
        """
        import os, resource, signal, threading
        from o_bus.evolution.sandbox import current_report
        def attempt(fn):
            try:
                fn()
                return "allowed"
            except (OSError, ValueError) as exc:
                return type(exc).__name__
        before = resource.getrlimit(resource.RLIMIT_AS)
        inf = resource.RLIM_INFINITY
        got = {
            "raise_as": attempt(lambda: resource.setrlimit(resource.RLIMIT_AS, (inf, inf))),
            "renice": attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, 0)),
            "signal_parent": attempt(lambda: os.kill(os.getppid(), 0)),
            "signal_self": attempt(lambda: os.kill(os.getpid(), 0)),
            "thread_signal": attempt(lambda: signal.pthread_kill(threading.get_ident(), 0)),
        }
        emit(seccomp=current_report().seccomp, got=got,
             unchanged=resource.getrlimit(resource.RLIMIT_AS) == before)
        """
    )
    assert code == 0, err
    result = lines[-1]
    if not result["seccomp"]:
        pytest.skip("seccomp is unavailable here; the audit hook alone is active")
    assert result["got"] == {
        "raise_as": "ValueError",
        "renice": "PermissionError",
        "signal_parent": "PermissionError",
        "signal_self": "allowed",
        "thread_signal": "allowed",
    }
    assert result["unchanged"]


async def test_unbounded_allocation_hits_the_memory_limit() -> None:
    code, lines, err = await run_child(
        """
        held = []
        try:
            while True:
                held.append(bytearray(4 * 1024 * 1024))
        except MemoryError:
            size = len(held) * 4
            held.clear()
            emit(memory_error=True, mib=size)
        """,
        SandboxLimits(memory_bytes=256 * 1024 * 1024),
    )
    assert code == 0, err
    assert lines[-1]["memory_error"] is True
    assert lines[-1]["mib"] < 256


async def test_open_files_limit_holds() -> None:
    code, lines, err = await run_child(
        """
        import errno
        handles = []
        try:
            while True:
                handles.append(open("/dev/null"))
        except OSError as exc:
            emit(opened=len(handles), error=errno.errorcode[exc.errno])
        """,
        SandboxLimits(open_files=40),
    )
    assert code == 0, err
    assert lines[-1]["error"] == "EMFILE"
    assert 0 < lines[-1]["opened"] < 40


async def test_cpu_time_limit_ends_a_busy_loop() -> None:
    code, _, _ = await run_child("while True:\n    pass\n", SandboxLimits(cpu_seconds=1))
    assert code in (-signal.SIGXCPU, -signal.SIGKILL)


async def test_watchdog_kills_a_process_that_stops_beating() -> None:
    process = await spawn_sandboxed(["-c", "while True:\n    pass\n"], SandboxLimits())
    watchdog = Watchdog(process.pid, timeout=0.5)
    reason = await asyncio.wait_for(watchdog.wait(), timeout=60)
    assert await process.wait() == -signal.SIGKILL
    assert watchdog.fired
    assert f"pid {process.pid}" in reason
    assert "killed with SIGKILL" in reason
    await watchdog.stop()


async def test_watchdog_leaves_a_beating_process_alone() -> None:
    process = await spawn_sandboxed(
        [
            "-c",
            "import time\nfor _ in range(30):\n"
            "    print('beat', flush=True)\n    time.sleep(0.05)\n",
        ],
        SandboxLimits(),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    async with Watchdog(process.pid, timeout=5.0) as watchdog:
        beats = 0
        while await process.stdout.readline():
            watchdog.beat()
            beats += 1
        assert await process.wait() == 0
        assert not watchdog.fired
    assert beats == 30
    assert watchdog.reason is None


async def test_watchdog_on_a_process_that_already_exited_kills_nothing() -> None:
    process = await spawn_sandboxed(["-c", "pass"], SandboxLimits())
    assert await process.wait() == 0
    watchdog = Watchdog(process.pid, timeout=0.1)
    reason = await asyncio.wait_for(watchdog.wait(), timeout=60)
    assert "already exited" in reason


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        SandboxLimits(wall_clock_seconds=0)
    with pytest.raises(ValidationError):
        SandboxLimits(nice=40)
    with pytest.raises(ValidationError):
        SandboxLimits.model_validate({"memory": 1})


async def test_the_parent_is_unaffected() -> None:
    before = {res: resource.getrlimit(res) for res in (resource.RLIMIT_AS, resource.RLIMIT_NOFILE)}
    code, _, err = await run_child(
        "import os\ntry:\n    os.fork()\nexcept PermissionError:\n    pass\n",
        SandboxLimits(memory_bytes=200 * 1024 * 1024, open_files=20),
    )
    assert code == 0, err
    assert {res: resource.getrlimit(res) for res in before} == before
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0
    done = subprocess.run([sys.executable, "-c", "print('free')"], capture_output=True, check=True)
    assert done.stdout == b"free\n"
    held = bytearray(300 * 1024 * 1024)  # more than the child's address-space limit
    assert len(held) == 300 * 1024 * 1024


async def test_a_bare_environment_keeps_the_parents_variables_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("O_BUS_TEST_SECRET", "do-not-leak")
    process = await spawn_sandboxed(
        ["-c", "import json, os\nprint(json.dumps(sorted(os.environ)))"],
        SandboxLimits(),
        env={"EXTRA": "1"},
        stdout=subprocess.PIPE,
        inherit_env=False,
    )
    out, _ = await process.communicate()
    names = json.loads(out)
    assert "O_BUS_TEST_SECRET" not in names
    assert {"EXTRA", "O_BUS_SANDBOX_LIMITS"} <= set(names)
