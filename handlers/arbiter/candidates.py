"""A running candidate process, as the arbiter sees it: spawned in the sandbox, watched
from outside (exit, or silence longer than the wall-clock limit: killed), and its stats."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.evolution.provenance import TRUSTED_KEYS_ENV, trusted_keys_text
from o_bus.evolution.sandbox import SandboxLimits, Watchdog, spawn_sandboxed, spec_files
from o_bus.store import layout

__all__ = ["CandidateHandle"]

log = logging.getLogger(__name__)
STARTUP_SECONDS = 30.0  # Python start-up and loading the code, before the first stats
# (time spent waiting for a CPU not counted)
FINAL_STATS_SECONDS = 1.0  # after an exit with code 1, for the stats message saying why


class CandidateHandle:
    def __init__(
        self,
        nc: Client,
        url: str,
        agent: str,
        version: str,
        limits: SandboxLimits,
        agent_args: Sequence[str] = (),
    ) -> None:
        self.nc, self.url, self.agent, self.version, self.limits = nc, url, agent, version, limits
        self.agent_args = list(agent_args)
        self.latest: CandidateStats | None = None
        self.first_stats = asyncio.Event()
        self._failed_stats = asyncio.Event()  # the process reported itself unusable
        self.process: asyncio.subprocess.Process | None = None
        self.watchdog: Watchdog | None = None
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._folder: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        subject = layout.candidate_subject(self.agent, self.version, "stats")
        self._sub = await self.nc.subscribe(subject, cb=self._on_stats)
        argv = ["-m", "o_bus.evolution.candidate", self.agent, self.version, "--nats", self.url]
        # Its own folder (the code it fetches), no environment of ours, the bus only.
        self._folder = Path(tempfile.mkdtemp(prefix="o-bus-candidate-"))
        self.process = await spawn_sandboxed(
            [*argv, *self.agent_args],
            self.limits,
            env={
                "O_BUS_CODE_CACHE": str(self._folder / "code"),
                TRUSTED_KEYS_ENV: trusted_keys_text(),  # it cannot read the data dir
            },
            inherit_env=False,
            cwd=self._folder,
            workdir=self._folder,
            bus=self.url,
            read=spec_files(*self._definition_specs()),
        )
        log.info("candidate %s of %s started, pid %d", self.version[:19], self.agent, self.pid)
        self._tasks = [
            asyncio.create_task(self._wait_exit(self.process)),
            asyncio.create_task(self._watch_startup()),
        ]

    def _definition_specs(self) -> list[str]:
        """The ``--agent`` definition specs among the agent arguments (files to read)."""
        pairs = itertools.pairwise(self.agent_args)
        return [spec for option, spec in pairs if option == "--agent"]

    async def _on_stats(self, msg: Msg) -> None:
        try:
            stats = CandidateStats.model_validate_json(msg.data)
        except ValidationError:
            return
        if stats.pid != self.pid:
            return  # an older process of the same version, going away
        self.latest = stats
        if self.watchdog is None:
            self.watchdog = Watchdog(stats.pid, self.limits.wall_clock_seconds)
            self._tasks.append(asyncio.create_task(self._watch_watchdog(self.watchdog)))
        self.watchdog.beat()
        self.first_stats.set()
        if stats.phase == "failed":
            self._failed_stats.set()

    async def _watch_startup(self) -> None:
        """Kill a candidate that sends no stats within STARTUP_SECONDS of starting, not
        counting time it waited for a CPU (under SCHED_IDLE a busy host may starve it)."""
        assert self.pid is not None
        startup = Watchdog(self.pid, STARTUP_SECONDS)
        first = asyncio.ensure_future(self.first_stats.wait())
        fired = asyncio.ensure_future(startup.wait())
        try:
            await asyncio.wait({first, fired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            first.cancel()
            fired.cancel()
            await startup.stop()
        if startup.fired:
            self._end(f"no stats within {STARTUP_SECONDS:g} s of starting: {startup.reason}")

    async def _watch_watchdog(self, watchdog: Watchdog) -> None:
        reason = await watchdog.wait()
        self._end(
            f"killed by the watchdog: {reason} (a request ran longer than the "
            f"{self.limits.wall_clock_seconds:g} s wall-clock limit, or the process hung)"
        )

    async def _wait_exit(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping:
            self._end("stopped")
            return
        if code == 1 and not self._failed_stats.is_set():
            # Exit code 1: the candidate found itself unusable and sent why in its last stats,
            # which can arrive after its exit has been seen.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._failed_stats.wait(), FINAL_STATS_SECONDS)
        detail = self.latest.last_failure if self.latest and self.latest.last_failure else None
        if code < 0:
            how = f"killed by signal {signal.Signals(-code).name}"
            if -code == signal.SIGXCPU:
                how += " (CPU time limit)"
        else:
            how = f"exited with code {code}"
        self._end(f"candidate process {how}" + (f": {detail}" if detail else ""))

    def _end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)
        if self._folder is not None and (
            self.process is None or self.process.returncode is not None
        ):
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the process by PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self._stopping = True
        if self.watchdog is not None:
            await self.watchdog.stop()
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                self._kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._end("stopped")

    def age(self) -> float:
        return time.time() - self.latest.started_at if self.latest else 0.0
