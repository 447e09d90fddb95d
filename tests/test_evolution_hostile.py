"""Hostile candidates: code that loops forever, allocates without bound, crashes on import,
raises on every request, or tries to start processes is rejected at deploy or killed and
rolled back, and live keeps serving throughout.

Every test runs steady traffic against live while the candidate is under test and checks
that no request failed, that every answer is live code's (``2 * x``), that the candidate's
process is gone afterwards, and that the live event log holds only live code's events.
Real nats-server, real sandboxed candidate processes, the arbiter in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from evolution_support import (
    FAST,
    ArbiterRun,
    deploy_source,
    running_arbiter,
    scorer_platform,
    scorer_source,
    start_evolution,
    steady_traffic,
)
from nats.aio.msg import Msg
from support import Platform, collect_events, eventually

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.code_store import CodeStore, default_cache_dir
from o_bus.evolution.plan import Evolution
from o_bus.evolution.routes import RouteStore
from o_bus.evolution.sandbox import SandboxLimits
from o_bus.evolution.validate import InvalidCodeError
from o_bus.store import layout

pytestmark = pytest.mark.slow

LIVE_VERSION = "1.0.0"
MiB = 1024 * 1024


class CandidatePids:
    """PIDs of candidate processes of scorer, from their stats (their heartbeats)."""

    def __init__(self) -> None:
        self.stats: dict[int, CandidateStats] = {}

    async def on_stats(self, msg: Msg) -> None:
        stats = CandidateStats.model_validate_json(msg.data)
        self.stats.setdefault(stats.pid, stats)

    def of(self, digest: str) -> list[int]:
        return [pid for pid, s in self.stats.items() if s.version == digest]


@contextlib.asynccontextmanager
async def watching_candidates(platform: Platform) -> AsyncIterator[CandidatePids]:
    pids = CandidatePids()
    sub = await platform.nc.subscribe(f"{layout.CANDIDATE_PREFIX}scorer.*.stats", cb=pids.on_stats)
    try:
        yield pids
    finally:
        await sub.unsubscribe()


def assert_gone(pid: int) -> None:
    """No process ``pid`` runs a candidate any more (a recycled PID runs something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return
    assert b"o_bus.evolution.candidate" not in cmdline, f"candidate pid {pid} still exists"


async def rejected_run(
    platform: Platform,
    arbiter: ArbiterRun,
    pids: CandidatePids,
    folder: Path,
    name: str,
    source: str,
    **plan: object,
) -> tuple[Evolution, int]:
    """Deploy ``source``, run its evolution under traffic; the finished record and its pid."""
    version = await deploy_source(platform.js, folder, name, source)
    async with steady_traffic(platform) as seen:
        await start_evolution(platform.js, version, **{**FAST, **plan})
        done = await arbiter.finished()
        answered_while_under_test = seen.answered
    assert not seen.failed, seen.failed
    assert not seen.not_live, seen.not_live
    assert answered_while_under_test > 0
    assert done.status == "rolled_back", done.decisions
    assert done.decisions[-1].action == "rollback"
    started = pids.of(version.digest)
    assert len(started) == 1, f"expected one candidate process of {name}, saw {started}"
    assert_gone(started[0])
    route, _ = await RouteStore(platform.js).get("scorer")
    assert route.live is None
    assert not route.shadows
    assert route.canary is None
    return done, started[0]


async def assert_live_log_is_live_code(platform: Platform) -> None:
    events = await collect_events(platform.log("scorer"))
    assert events
    assert {e.code_version for e in events} == {LIVE_VERSION}


# -- rejected at deploy ------------------------------------------------------------------------

IMPORT_CRASHES = {
    "raises": ("raise RuntimeError('no model file')", "importing it raised RuntimeError"),
    "exits": ("raise SystemExit(3)", "called exit(3) at import"),
    "os_system": (
        "import os\nos.system('true')",
        "PermissionError: sandboxed candidate may not start processes (os.system refused)",
    ),
    "subprocess": (
        "import subprocess\nsubprocess.run(['true'])",
        "may not start processes (subprocess.Popen refused)",
    ),
    "fork": ("import os\nos.fork()", "may not start processes (os.fork refused)"),
}

# Imports cleanly where `o-bus deploy` checks it, crashes in the candidate process (as code
# does whose import depends on where it runs).
CRASH_IN_CANDIDATE = (
    "import sys\n"
    "if 'o_bus.evolution.candidate.process' in sys.modules:\n"
    "    raise RuntimeError('configuration missing where the candidate runs')"
)


async def test_code_that_crashes_or_starts_processes_on_import_is_rejected(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        watching_candidates(platform) as pids,
    ):
        async with steady_traffic(platform) as seen:
            for name, (prelude, expected) in IMPORT_CRASHES.items():
                source = scorer_source("1.1.0", module_prelude=prelude)
                with pytest.raises(InvalidCodeError) as refused:
                    await deploy_source(platform.js, tmp_path, name, source)
                assert expected in refused.value.message, (name, refused.value.message)
                assert f"{name}.py" in refused.value.message
            answered = seen.answered

            async def traffic_after_refusals() -> bool:
                return seen.answered > answered

            await eventually(traffic_after_refusals, what="live to answer after the refusals")
        assert not seen.failed, seen.failed
        assert not seen.not_live, seen.not_live
        assert seen.answered > 0
        assert await CodeStore(platform.js, default_cache_dir()).list("scorer") == []

        async with running_arbiter(nats_url, spec) as arbiter:
            source = scorer_source("1.2.0", module_prelude=CRASH_IN_CANDIDATE)
            done, _ = await rejected_run(
                platform, arbiter, pids, tmp_path, "crash_in_candidate", source
            )
        reason = done.decisions[-1].reason
        assert "candidate process exited with code 1" in reason, reason
        assert "cannot load the code" in reason, reason
        assert "configuration missing" in reason, reason
        await assert_live_log_is_live_code(platform)


# -- killed or rolled back while under test ------------------------------------------------------


async def test_a_candidate_that_loops_forever_is_killed_by_the_watchdog(
    nats_url: str, tmp_path: Path
) -> None:
    limits = SandboxLimits(wall_clock_seconds=1.0)
    async with (
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        watching_candidates(platform) as pids,
        running_arbiter(nats_url, spec) as arbiter,
    ):
        source = scorer_source("1.3.0", handler_prelude="while True:\n    pass")
        done, pid = await rejected_run(
            platform, arbiter, pids, tmp_path, "loops", source, limits=limits
        )
        reason = done.decisions[-1].reason
        assert reason.startswith("killed by the watchdog"), reason
        assert f"no sign of life from pid {pid}" in reason, reason
        assert "killed with SIGKILL" in reason, reason
        assert "1 s wall-clock limit" in reason, reason
        await assert_live_log_is_live_code(platform)


async def test_a_candidate_that_allocates_without_bound_hits_its_memory_limit(
    nats_url: str, tmp_path: Path
) -> None:
    # RLIMIT_AS counts address space; a candidate process starts at about 170 MiB of it.
    limits = SandboxLimits(memory_bytes=320 * MiB)
    hog = "hog = []\nwhile True:\n    hog.append(bytearray(1 << 20))"
    async with (
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        watching_candidates(platform) as pids,
        running_arbiter(nats_url, spec) as arbiter,
    ):
        source = scorer_source("1.4.0", handler_prelude=hog)
        done, pid = await rejected_run(
            platform, arbiter, pids, tmp_path, "hog", source, limits=limits
        )
        reason = done.decisions[-1].reason
        assert "candidate process exited with code 1" in reason, reason
        assert "exhausted the sandbox's memory limit" in reason, reason
        assert f"RLIMIT_AS={320 * MiB}" in pids.stats[pid].sandbox
        await assert_live_log_is_live_code(platform)


async def test_a_candidate_that_raises_on_every_request_is_rolled_back(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        watching_candidates(platform) as pids,
        running_arbiter(nats_url, spec) as arbiter,
    ):
        source = scorer_source("1.5.0", handler_prelude="raise KeyError('weights')")
        done, _ = await rejected_run(platform, arbiter, pids, tmp_path, "raises", source)
        reason = done.decisions[-1].reason
        assert "candidate code fails more than live" in reason, reason
        assert "live on 0" in reason, reason
        assert "last: KeyError: 'weights'" in reason, reason
        metrics = done.decisions[-1].metrics
        # Three failures where live had none are a verdict before the minimum sample.
        assert metrics["candidate_failures"] == metrics["compared"] >= 3
        await assert_live_log_is_live_code(platform)


PROCESS_STARTS = {
    "subprocess_in_handler": (
        "import subprocess\nsubprocess.run(['true'])",
        "PermissionError: sandboxed candidate may not start processes (subprocess.Popen refused)",
    ),
    "system_in_handler": (
        "import os\nos.system('true')",
        "PermissionError: sandboxed candidate may not start processes (os.system refused)",
    ),
    "fork_in_handler": (
        "import os\nos.fork()",
        "PermissionError: sandboxed candidate may not start processes (os.fork refused)",
    ),
}

# fork() straight from libc, past the audit hook: only the seccomp filter stands in the way.
# Should the fork succeed, the child leaves at once and the handler answers like live.
LIBC_FORK = """import ctypes
import os
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.fork()
if pid == 0:
    os._exit(0)
if pid < 0:
    err = ctypes.get_errno()
    raise OSError(err, 'libc fork: ' + os.strerror(err))"""


async def test_a_candidate_that_starts_processes_in_a_handler_is_refused(
    nats_url: str, tmp_path: Path
) -> None:
    async with (
        scorer_platform(nats_url, tmp_path) as (platform, spec),
        watching_candidates(platform) as pids,
        running_arbiter(nats_url, spec) as arbiter,
    ):
        for minor, (name, (prelude, expected)) in enumerate(PROCESS_STARTS.items(), 1):
            source = scorer_source(f"1.6.{minor}", handler_prelude=prelude)
            done, _ = await rejected_run(platform, arbiter, pids, tmp_path, name, source)
            reason = done.decisions[-1].reason
            assert "candidate code fails more than live" in reason, reason
            assert expected in reason, (name, reason)
        sandbox = next(iter(pids.stats.values())).sandbox
        if "seccomp:" not in sandbox:
            pytest.skip(f"no seccomp filter on this machine: {sandbox}")
        source = scorer_source("1.6.9", handler_prelude=LIBC_FORK)
        done, _ = await rejected_run(platform, arbiter, pids, tmp_path, "libc_fork", source)
        reason = done.decisions[-1].reason
        assert "PermissionError: [Errno 1] libc fork: Operation not permitted" in reason, reason
        await assert_live_log_is_live_code(platform)
