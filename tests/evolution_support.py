"""Candidate code for the evolution tests: versions of a small agent ``scorer``.

``scorer`` answers ``guess{x}`` with an event carrying its ``answer``, plus two noisy fields
(a timestamp and a random trace id), so two evaluations of the same code differ in noise
only. Its fitness function rewards answers close to ``3 * x``. Live answers ``2 * x``.
Each variant is a complete, self-contained source file, as `o-bus deploy` takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from support import Platform, eventually, running_platform

from o_bus.common.connect import connect
from o_bus.errors import OBusError
from o_bus.evolution.code_store import CodeVersion
from o_bus.evolution.deploy import deploy
from o_bus.evolution.evolution_store import EvolutionStore
from o_bus.evolution.plan import Evolution, EvolutionPlan
from o_bus.handlers.arbiter.service import Arbiter

__all__ = [
    "FAST",
    "ArbiterRun",
    "Traffic",
    "deploy_source",
    "running_arbiter",
    "scorer_platform",
    "scorer_source",
    "start_evolution",
    "steady_traffic",
    "write_live_scorer",
]

FAST = {"min_requests": 30, "min_canary_requests": 10, "min_stage_seconds": 0.5}

TEMPLATE = """
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from o_bus import AgentDefinition, Command, Event, State
{module_prelude}

class ScorerState(State):
    guesses: int = 0
    total: int = 0


class Guess(Command):
    x: int


class Scored(Event):
    x: int
    answer: int
    at: str
    trace: str


scorer = AgentDefinition("scorer", state=ScorerState, version="{version}")


@scorer.command
def guess(state: ScorerState, cmd: Guess) -> Scored:
{handler_prelude}
    answer = {answer}
    return Scored(
        x=cmd.x, answer=answer, at=datetime.now(UTC).isoformat(), trace=uuid.uuid4().hex
    )


@scorer.applies
def _(state: ScorerState, event: Scored) -> ScorerState:
    return state.model_copy(
        update={{"guesses": state.guesses + 1, "total": state.total + event.answer}}
    )


@scorer.fitness
def closeness(state: ScorerState, cmd: Guess, events: list[Event]) -> float:
    answers = [e.answer for e in events if isinstance(e, Scored)]
    return -abs(answers[0] - 3 * cmd.x) if answers else -1000.0
"""


def scorer_source(
    version: str,
    answer: str = "2 * cmd.x",
    *,
    handler_prelude: str = "",
    module_prelude: str = "",
) -> str:
    body = "\n".join("    " + line for line in handler_prelude.splitlines())
    return TEMPLATE.format(
        version=version, answer=answer, handler_prelude=body, module_prelude=module_prelude
    )


def write_live_scorer(folder: Path) -> str:
    """Write live's scorer and return its definition spec for the agent host."""
    path = folder / "scorer_live.py"
    path.write_text(scorer_source("1.0.0"))
    return f"{path}:scorer"


async def deploy_source(js: JetStreamContext, folder: Path, name: str, source: str) -> CodeVersion:
    path = folder / f"{name}.py"
    path.write_text(source)
    return await deploy(js, "scorer", path, by="test", note=name)


async def start_evolution(js: JetStreamContext, version: CodeVersion, **plan: Any) -> None:
    await EvolutionStore(js).request(
        Evolution(
            agent="scorer",
            version=version.digest,
            code_version=version.code_version,
            plan=EvolutionPlan(**plan),
            requested_by="test",
        )
    )


@dataclass
class Traffic:
    """Steady ``guess`` requests to scorer; what came back."""

    answered: int = 0
    failed: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    not_live: list[str] = field(default_factory=list)  # answers live code (2 * x) would not give


@contextlib.asynccontextmanager
async def steady_traffic(platform: Platform, pause: float = 0.005) -> AsyncIterator[Traffic]:
    seen = Traffic()
    # A flag as well as cancel(): on Python 3.11 a cancel() that lands as a reply arrives is
    # swallowed by asyncio.wait_for inside the request, and the loop would carry on.
    stop = asyncio.Event()

    async def loop() -> None:
        for n in itertools.count(1):
            if stop.is_set():
                return
            x = n % 7 + 1
            try:
                reply = await platform.send("scorer", "guess", {"x": x})
            except OBusError as err:
                seen.failed.append(f"x={x}: {err}")
                continue
            if not reply["ok"]:
                seen.failed.append(f"x={x}: {reply}")
                continue
            seen.answered += 1
            answer = reply["events"][0]["data"]["answer"]
            seen.answers.append(answer)
            if answer != 2 * x:
                seen.not_live.append(f"x={x}: answer {answer}")
            await asyncio.sleep(pause)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def scorer_platform(url: str, folder: Path) -> AsyncIterator[tuple[Platform, str]]:
    spec = write_live_scorer(folder)
    async with running_platform(url, agents=("scorer",), extra_definitions=[spec]) as platform:
        yield platform, spec


class ArbiterRun:
    def __init__(self, nc: Client, js: JetStreamContext, arbiter: Arbiter) -> None:
        self.nc, self.js, self.arbiter = nc, js, arbiter

    async def evolution(self) -> Evolution:
        return (await EvolutionStore(self.js).get("scorer"))[0]

    async def finished(self, timeout: float = 60.0) -> Evolution:
        """The evolution once it is no longer active (a hang guard, not a timing check)."""

        async def ended() -> Evolution | None:
            evolution = await self.evolution()
            return None if evolution.active else evolution

        async def describe() -> str:
            evolution = await self.evolution()
            return f"the evolution to end (still {evolution.stage}: {evolution.decisions})"

        try:
            finished: Evolution = await eventually(ended, what="the evolution", timeout=timeout)
        except AssertionError as err:
            raise AssertionError(await describe()) from err
        return finished


@contextlib.asynccontextmanager
async def running_arbiter(url: str, live_spec: str) -> AsyncIterator[ArbiterRun]:
    async with connect(url, "test-arbiter") as (nc, js):
        arbiter = Arbiter(nc, js, url, agent_args=["--agent", live_spec], tick=0.1)
        await arbiter.start()
        try:
            yield ArbiterRun(nc, js, arbiter)
        finally:
            await arbiter.stop()
