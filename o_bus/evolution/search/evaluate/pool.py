"""Evaluations in sandboxed worker processes, as many at once as there are workers.

Each evaluation is its own process under :func:`~o_bus.evolution.sandbox.spawn_sandboxed`
(memory, CPU-time and open-file limits, no child processes, ``nice 19``), moved to the
``SCHED_IDLE`` scheduling class where the kernel offers it, so live traffic keeps the CPU.
The CPU-time limit (``RLIMIT_CPU``) ends a child that computes too long; a
:class:`~o_bus.evolution.sandbox.Watchdog` kills it from outside when it prints nothing
(each request's result is a sign of life) for the wall-clock timeout, which catches children
that block. Under SCHED_IDLE a child may wait long for CPU on a busy machine, so the
wall-clock limit is generous and the CPU limit does the precise work. An evaluation that did not
complete is a failure with its reason, never a score. With ``spare_cores``, an evaluation
starts only while the rest of the machine leaves that many cores idle
(:mod:`~o_bus.evolution.search.evaluate.spare_cpu`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from o_bus.common.priority import idle_priority
from o_bus.evolution.boundary import sandbox_uid
from o_bus.evolution.sandbox import MiB, SandboxLimits, Watchdog, spawn_sandboxed
from o_bus.evolution.search.evaluate.spare_cpu import SpareCpu
from o_bus.evolution.search.evaluate.worker import MARK, EvaluationJob

__all__ = ["EvaluationPool", "OnCheckpoint"]

OnCheckpoint = Callable[[dict[str, Any]], Awaitable[None]]

_STDERR_TAIL = 4000


class EvaluationPool:
    """Runs :class:`EvaluationJob`\\ s, at most ``workers`` at a time, each once
    ``spare_cores`` cores are idle apart from the pool's own evaluations (0: at once)."""

    def __init__(
        self,
        workers: int,
        *,
        timeout: float,
        memory_mb: int,
        cpu_seconds: int = 10,
        workdir: Path | None = None,
        spare_cores: float = 0.0,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.limits = SandboxLimits(
            memory_bytes=memory_mb * MiB,
            cpu_seconds=cpu_seconds,
            nice=19,
            wall_clock_seconds=timeout,
        )
        self._slots = asyncio.Semaphore(workers)
        self._workdir = workdir
        self.spare = SpareCpu(spare_cores)
        self._running: set[int] = set()

    async def run(
        self, job: EvaluationJob, on_checkpoint: OnCheckpoint | None = None
    ) -> dict[str, Any]:
        """The worker's summary (``outcome`` ok / invalid / failed / pruned / killed), with
        ``wall_s`` and ``sandbox``; ``on_checkpoint`` gets each cache checkpoint it reports."""
        async with self._slots:
            await self.spare.wait(self._running)
            started = time.monotonic()
            result = await self._run(job, on_checkpoint)
            result["wall_s"] = round(time.monotonic() - started, 4)
            return result

    async def _run(self, job: EvaluationJob, on_checkpoint: OnCheckpoint | None) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="o-bus-eval-", dir=self._workdir) as folder:
            job = _readable_copy(job, Path(folder), sandbox_uid(self.limits.uid))
            job_file = Path(folder) / "job.json"
            job_file.write_text(job.model_dump_json())
            process = await spawn_sandboxed(
                ["-m", "o_bus.evolution.search.evaluate.worker", str(job_file)],
                self.limits,
                cwd=folder,
                env={"PYTHONSAFEPATH": "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                inherit_env=False,
                read=_inputs(job),
                workdir=Path(folder),
            )
            idle = idle_priority(process.pid)
            self._running.add(process.pid)
            try:
                async with Watchdog(process.pid, self.timeout) as watchdog:
                    stderr_task = asyncio.create_task(_tail(process.stderr))
                    assert process.stdout is not None
                    try:
                        final = await self._follow(process.stdout, watchdog, on_checkpoint)
                        returncode = await process.wait()
                        stderr = await stderr_task
                    except BaseException:
                        # A cancelled search (a trigger's wall-time budget) leaves no evaluation
                        # running behind it.
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                        stderr_task.cancel()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(process.wait(), 5.0)  # reaped, not left behind
                        raise
                    fired = watchdog.fired
            finally:
                self._running.discard(process.pid)
            sandbox = (
                f"nice 19{', SCHED_IDLE' if idle else ''}, {self.limits.memory_bytes // MiB} MiB"
            )
            if fired:
                return {
                    "outcome": "killed",
                    "reason": f"no sign of life for {self.timeout:g} s: killed with SIGKILL",
                    "sandbox": sandbox,
                }
            if final is None and returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                return {
                    "outcome": "killed",
                    "reason": f"{_signal_name(returncode)}: over the CPU-time limit of "
                    f"{self.limits.cpu_seconds} s",
                    "sandbox": sandbox,
                }
            if final is None:
                tail = stderr.strip()[-_STDERR_TAIL:]
                return {
                    "outcome": "failed",
                    "reason": f"evaluation process exited with code {returncode}"
                    + (f": {tail[-500:]}" if tail else ""),
                    "sandbox": sandbox,
                }
            final.pop("final", None)
            final["sandbox"] = sandbox
            return final

    @staticmethod
    async def _follow(
        stdout: asyncio.StreamReader, watchdog: Watchdog, on_checkpoint: OnCheckpoint | None
    ) -> dict[str, Any] | None:
        """Read the worker's lines until it closes them; return its final summary."""
        final: dict[str, Any] | None = None
        while line := await stdout.readline():
            watchdog.beat()
            text = line.decode(errors="replace")
            if not text.startswith(MARK):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(text.removeprefix(MARK))
                if record.get("final"):
                    final = record
                elif on_checkpoint is not None and "checkpoint" in record:
                    await on_checkpoint(record)
        return final


def _inputs(job: EvaluationJob) -> list[Path]:
    """The files the worker reads: Landlock lets it read these and nothing else of ours."""
    optional = (job.regressions, job.resume)
    return [job.candidate, job.baseline, job.dataset, *(p for p in optional if p is not None)]


def _readable_copy(job: EvaluationJob, folder: Path, uid: int) -> EvaluationJob:
    """``job`` as the sandbox can read it: where it runs as another uid, its files are copied
    into the job's folder (which becomes that uid's); otherwise unchanged."""
    if uid == os.getuid():
        return job
    copies = {}
    for kind in ("candidate", "baseline", "dataset", "regressions", "resume"):
        source: Path | None = getattr(job, kind)
        if source is None:
            continue
        copies[kind] = folder / kind / source.name
        copies[kind].parent.mkdir()
        shutil.copyfile(source, copies[kind])
    return job.model_copy(update=copies)


def _signal_name(returncode: int) -> str:
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


async def _tail(stream: asyncio.StreamReader | None, limit: int = _STDERR_TAIL) -> str:
    kept = bytearray()
    while stream is not None and (chunk := await stream.read(65536)):
        kept += chunk
        if len(kept) > limit:
            del kept[:-limit]
    return kept.decode(errors="replace")
