"""Code versions of the counter for the benchmark, and shadows of it as real candidates.

Each version is a copy of ``agents/counter.py`` that differs only in its version string
(``1.0.0+<label>``), deployed with :func:`o_bus.evolution.deploy.deploy` (validated in the
sandbox, stored content-addressed). Shadows are candidate processes started exactly as the
evolution arbiter starts them (:class:`CandidateHandle`: ``python -m o_bus.evolution.candidate``
in the sandbox), with the agent's route listing them as shadows.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic_core import from_json

from o_bus.agents import counter as counter_module
from o_bus.evolution.deploy import deploy
from o_bus.evolution.routes import RouteStore, ShadowRoute
from o_bus.evolution.sandbox import SandboxLimits
from o_bus.handlers.arbiter.candidates import CandidateHandle
from o_bus.store import layout
from o_bus_bench.errors import BenchError

__all__ = [
    "SCHEDULING",
    "DeployedCopy",
    "ShadowFigures",
    "deploy_copies",
    "live_position",
    "running_shadows",
]

BY = "o-bus bench evolution"
REGISTERED_VERSION = counter_module.counter.version
READY_SECONDS = 60.0
# Under full load a niced candidate can wait long for the CPU; the benchmark measures its cost,
# so the watchdog only guards against a real hang.
WALL_CLOCK_SECONDS = 30.0
# How shadows are scheduled: niceness, SCHED_IDLE (evolutions' default), and a hard CPU
# cap in share of one core (the route's ``cpu``; None: no cap).
SCHEDULING: dict[str, tuple[int, bool, float | None]] = {
    "idle": (10, True, None),
    "cap": (10, True, 0.1),
    "nice10": (10, False, None),
    "nice0": (0, False, None),
}


@dataclass(frozen=True, slots=True)
class DeployedCopy:
    digest: str
    version: str  # the definition's version string


async def deploy_copies(js: JetStreamContext, agent: str, labels: list[str]) -> list[DeployedCopy]:
    """Deploy one copy of the counter per label, each with version ``<registered>+<label>``."""
    source = inspect.getsource(counter_module)
    marker = f'version="{REGISTERED_VERSION}"'
    if marker not in source:
        raise BenchError(f"agents/counter.py no longer contains {marker}: cannot make copies")
    copies: list[DeployedCopy] = []
    with tempfile.TemporaryDirectory(prefix="o-bus-bench-code-") as folder:
        for label in labels:
            version = f"{REGISTERED_VERSION}+{label}"
            path = Path(folder) / f"counter_{label}.py"
            path.write_text(source.replace(marker, f'version="{version}"'), encoding="utf-8")
            deployed = await deploy(js, agent, path, by=BY, note=f"benchmark copy ({label})")
            copies.append(DeployedCopy(deployed.digest, version))
    return copies


async def live_position(nc: Client, agent: str) -> tuple[int, int]:
    """Requests the live agent has answered since it started, and its event sequence."""
    try:
        msg = await nc.request(layout.control_subject(agent, "status"), b"", timeout=5.0)
        status = from_json(msg.data)
        return int(status["requests"]), int(status["seq"])
    except (nats.errors.Error, ValueError, KeyError) as err:
        raise BenchError(f"the {agent} agent did not report its status: {err!r}") from err


@dataclass(slots=True)
class ShadowFigures:
    """What the shadows did while live was measured."""

    pids: dict[str, int]
    compared: list[int]  # per shadow, mirrored requests evaluated during the run
    live_requests: int  # requests live answered during the same run
    behind: list[int]  # per shadow, live events it had not reached at the end
    sandbox: str

    def kept_up(self) -> float:
        """Coverage: the lowest share of live's requests that a shadow compared in the same
        time."""
        if not self.compared or not self.live_requests:
            return 1.0
        return min(self.compared) / self.live_requests


class Shadows:
    def __init__(self, handles: list[CandidateHandle]) -> None:
        self.handles = handles

    @property
    def pids(self) -> dict[str, int]:
        return {f"shadow-{n}": h.pid for n, h in enumerate(self.handles, 1) if h.pid}

    def compared(self) -> list[int]:
        return [h.latest.compared if h.latest else 0 for h in self.handles]

    def check(self) -> None:
        for handle in self.handles:
            if handle.ended.done():
                raise BenchError(f"shadow {handle.version[:19]} ended: {handle.ended.result()}")

    async def fresh_stats(self) -> None:
        """Wait for a stats message from every shadow sent after now."""
        now = time.time()
        deadline = time.monotonic() + READY_SECONDS
        while any(h.latest is None or h.latest.sent_at < now for h in self.handles):
            self.check()
            if time.monotonic() > deadline:
                raise BenchError("shadows stopped reporting their stats")
            await asyncio.sleep(0.05)

    def figures(self, before: list[int], live: int, live_seq: int) -> ShadowFigures:
        after = self.compared()
        latest = [h.latest for h in self.handles if h.latest]
        return ShadowFigures(
            pids=self.pids,
            compared=[a - b for a, b in zip(after, before, strict=True)],
            live_requests=live,
            behind=[max(0, live_seq - s.seq) for s in latest],
            sandbox=latest[0].sandbox if latest else "",
        )


@contextlib.asynccontextmanager
async def running_shadows(
    nc: Client,
    js: JetStreamContext,
    url: str,
    agent: str,
    versions: list[str],
    scheduling: str,
) -> AsyncIterator[Shadows]:
    """Candidate processes for ``versions``, listed as the agent's shadows, following live."""
    nice, idle, cap = SCHEDULING[scheduling]
    limits = SandboxLimits(nice=nice, idle_scheduling=idle, wall_clock_seconds=WALL_CLOCK_SECONDS)
    handles = [CandidateHandle(nc, url, agent, version, limits) for version in versions]
    routes = RouteStore(js)
    shadows = Shadows(handles)
    try:
        for handle in handles:
            await handle.start()
        if versions:
            await routes.update(
                agent,
                lambda r: r.model_copy(
                    update={"shadows": tuple(ShadowRoute(version=v, cpu=cap) for v in versions)}
                ),
                by=BY,
                reason=f"benchmark: {len(versions)} shadow(s)",
            )
        deadline = time.monotonic() + READY_SECONDS
        while not all(h.latest is not None and h.latest.phase == "following" for h in handles):
            shadows.check()
            if time.monotonic() > deadline:
                raise BenchError(f"shadows not following live within {READY_SECONDS:g} s")
            await asyncio.sleep(0.05)
        yield shadows
    finally:
        for handle in handles:
            await handle.stop()
        if versions:
            await routes.update(
                agent,
                lambda r: r.model_copy(update={"shadows": ()}),
                by=BY,
                reason="benchmark: shadows stopped",
            )
