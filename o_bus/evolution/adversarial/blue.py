"""Blue's side, sandboxed: a worker process that runs request sequences against one version.

The worker is started with :func:`~o_bus.evolution.sandbox.spawn_sandboxed` (resource limits,
no child processes) and watched by a :class:`~o_bus.evolution.sandbox.Watchdog`: a job that
does not answer within ``timeout`` seconds is killed from outside, reported as a ``timeout``
failure, and the worker is started again for the next job.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from dataclasses import dataclass
from typing import Any

from o_bus.agent.definition import AgentDefinition
from o_bus.errors import ConfigurationError
from o_bus.evolution.adversarial.cases import Failure, Step
from o_bus.evolution.sandbox import SandboxLimits, Watchdog, spawn_sandboxed, spec_files

__all__ = ["BlueWorker", "JobResult", "definition_spec"]

WORKER_MODULE = "o_bus.evolution.adversarial.blue_worker"


@dataclass(slots=True)
class JobResult:
    failure: Failure | None
    slowest_ms: float
    accepted: int = 0  # steps the agent accepted (not rejected)
    distinct: int = 0  # distinct answers among the steps


def definition_spec(definition: AgentDefinition[Any]) -> str:
    """``file.py:attr`` or ``module:attr`` that loads ``definition`` in another process."""
    commands = list(definition.command_types.values())
    if not commands:
        raise ConfigurationError(f"agent {definition.name!r} has no commands to evaluate")
    module = sys.modules.get(commands[0].__module__)
    if module is None:
        raise ConfigurationError(f"cannot find the module of agent {definition.name!r}")
    attr = next((k for k, v in vars(module).items() if v is definition), None)
    if attr is None:
        raise ConfigurationError(
            f"agent {definition.name!r} is not a top-level name of {module.__name__}"
        )
    path = getattr(module, "__file__", None)
    loaded_from_file = module.__name__.startswith("o_bus_agent_") or module.__name__ == "__main__"
    if loaded_from_file and path:
        return f"{path}:{attr}"
    return f"{module.__name__}:{attr}"


class BlueWorker:
    """One sandboxed process deciding request sequences with ``spec``'s pure handlers."""

    def __init__(
        self,
        spec: str,
        *,
        reference_spec: str | None = None,
        limits: SandboxLimits | None = None,
        timeout: float = 2.0,
        start_timeout: float = 30.0,
    ) -> None:
        self.spec, self.reference_spec = spec, reference_spec
        self.limits = limits or SandboxLimits(memory_bytes=512 * 1024 * 1024, cpu_seconds=600)
        self.timeout, self.start_timeout = timeout, start_timeout
        self.restarts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count()

    async def __aenter__(self) -> BlueWorker:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start(self) -> None:
        argv = ["-m", WORKER_MODULE, self.spec, self.reference_spec or ""]
        process = await spawn_sandboxed(
            argv,
            self.limits,
            read=spec_files(self.spec, self.reference_spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._process = process
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        if not line.startswith(b'{"ready"'):
            await self.close()
            raise ConfigurationError(f"blue worker for {self.spec} did not start: {line[:200]!r}")

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 2.0)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def run(
        self,
        steps: list[Step],
        *,
        start_state: dict[str, Any] | None = None,
        latency_ms: float | None = None,
    ) -> JobResult:
        """Run one sequence; a hang or a crash of the process is a failure, never a pass."""
        if self._process is None or self._process.returncode is not None:
            self.restarts += 1
            await self._start()
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        job_id = next(self._ids)
        job = {
            "id": job_id,
            "steps": [s.model_dump(mode="json") for s in steps],
            "start_state": start_state,
            "latency_ms": latency_ms,
        }
        process.stdin.write(json.dumps(job).encode() + b"\n")
        await process.stdin.drain()
        async with Watchdog(process.pid, self.timeout) as watchdog:
            reading = asyncio.ensure_future(process.stdout.readline())
            fired = asyncio.ensure_future(watchdog.wait())
            await asyncio.wait({reading, fired}, return_when=asyncio.FIRST_COMPLETED)
            fired.cancel()
        if not reading.done() or not reading.result():
            reading.cancel()
            await process.wait()
            self._process = None
            if watchdog.reason is not None:
                failure = Failure(kind="timeout", step=0, detail="timeout", message=watchdog.reason)
            else:
                why = f"the sandboxed process exited with {process.returncode}"
                failure = Failure(kind="exception", step=0, detail="process_died", message=why)
            return JobResult(failure, 0.0)
        answer = json.loads(reading.result())
        found = Failure.model_validate(answer["failure"]) if answer["failure"] else None
        return JobResult(
            found, float(answer["slowest_ms"]), int(answer["accepted"]), int(answer["distinct"])
        )
