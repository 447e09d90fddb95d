"""Hot reload: switching the live code of an agent under continuous load loses and fails
nothing, and the state carries over (migrated when the state schema changed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import Platform, collect_events, eventually, running_platform

from o_bus.agent.lifecycle import LifecycleState
from o_bus.errors import AgentUnavailableError
from o_bus.evolution.deploy import deploy
from o_bus.evolution.routes import Route, RouteStore
from o_bus.replay.system_history import read_system_history

COUNTER_SOURCE = Path(__file__).parent.parent / "agents" / "counter.py"

# Version 2 of counter's state: `value` renamed to `total`, with a migration of old state.
SCHEMA_2 = """
from __future__ import annotations

from typing import Any

from o_bus import AgentDefinition, Command, Event, State


class CounterState(State):
    total: int = 0
    increments: int = 0


class Increment(Command):
    by: int = 1


class Reset(Command):
    pass


class Incremented(Event):
    by: int


class ResetDone(Event):
    event_type = "reset"
    previous: int


counter = AgentDefinition("counter", state=CounterState, version="2.0.0", state_schema_version=2)


@counter.migrates_state(from_version=1)
def rename_value(data: dict[str, Any]) -> dict[str, Any]:
    data["total"] = data.pop("value")
    return data


@counter.command
def increment(state: CounterState, cmd: Increment) -> Incremented:
    return Incremented(by=cmd.by)


@counter.command
def reset(state: CounterState, cmd: Reset) -> ResetDone:
    return ResetDone(previous=state.total)


@counter.applies
def _inc(state: CounterState, event: Incremented) -> CounterState:
    return state.model_copy(
        update={"total": state.total + event.by, "increments": state.increments + 1}
    )


@counter.applies
def _reset(state: CounterState, event: ResetDone) -> CounterState:
    return state.model_copy(update={"total": 0})
"""


@dataclass
class Load:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stopping: bool = False


@contextlib.asynccontextmanager
async def continuous_increments(platform: Platform, workers: int = 4) -> AsyncIterator[Load]:
    load = Load()

    async def one_client() -> None:
        while not load.stopping:  # finish the request in flight, so every reply is counted
            try:
                reply = await platform.send("counter", "increment", {"by": 1})
            except AgentUnavailableError as err:
                load.failures.append(str(err))
                continue
            if reply["ok"]:
                load.ok += 1
            else:
                load.failures.append(str(reply))

    tasks = [asyncio.create_task(one_client()) for _ in range(workers)]
    try:
        yield load
    finally:
        load.stopping = True
        await asyncio.gather(*tasks)


async def switch(platform: Platform, live: str | None, why: str) -> None:
    def change(route: Route) -> Route:
        return route.model_copy(update={"live": live, "previous_live": route.live})

    await RouteStore(platform.js).update("counter", change, by="test", reason=why)


async def test_promotion_and_rollback_under_load_fail_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    async with running_platform(nats_url) as platform:
        copy = tmp_path / "counter_v1_1.py"
        copy.write_text(COUNTER_SOURCE.read_text().replace('version="1.0.0"', 'version="1.1.0"'))
        version = await deploy(platform.js, "counter", copy, by="test")
        async with continuous_increments(platform) as load:
            await eventually(lambda: _at_least(load, 100), what="traffic before the switch")
            await switch(platform, version.digest, "promote")
            await eventually(lambda: _version_is(platform, "1.1.0"), what="the reload to 1.1.0")
            before_rollback = load.ok
            await eventually(
                lambda: _at_least(load, before_rollback + 100), what="traffic on 1.1.0"
            )
            await switch(platform, None, "roll back")
            await eventually(lambda: _version_is(platform, "1.0.0"), what="the rollback")
            after = load.ok
            await eventually(lambda: _at_least(load, after + 100), what="traffic after")
        assert load.failures == []
        state = await platform.send("counter", "increment", {"by": 0})
        events = await collect_events(platform.log("counter"))
        # Every acknowledged increment is in the log once, in one unbroken sequence.
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len(events) == load.ok + 1
        assert state["seq"] == len(events)
        assert {e.code_version for e in events} == {"1.0.0", "1.1.0"}
        history: list[dict[str, Any]] = []
        await read_system_history(platform.js, "counter", history.append)
        reloads = [h for h in history if "route switched live code" in str(h.get("reason", ""))]
        assert len(reloads) == 2
        routes = [h for h in history if h["kind"] == "route"]
        assert [r["reason"] for r in routes] == ["promote", "roll back"]


async def test_a_new_state_schema_is_migrated_on_reload(nats_url: str, tmp_path: Path) -> None:
    async with running_platform(nats_url) as platform:
        for _ in range(5):
            await platform.send("counter", "increment", {"by": 2})
        source = tmp_path / "counter_v2.py"
        source.write_text(SCHEMA_2)
        version = await deploy(platform.js, "counter", source, by="test")
        await switch(platform, version.digest, "schema 2")
        await eventually(lambda: _version_is(platform, "2.0.0"), what="the reload to 2.0.0")
        host = platform.host
        assert host is not None
        worker = host.workers["counter"]
        assert worker.state.model_dump() == {"total": 10, "increments": 5}
        assert worker.lifecycle is LifecycleState.RUNNING
        reply = await platform.send("counter", "increment", {"by": 1})
        assert reply["ok"], reply
        assert worker.state.model_dump() == {"total": 11, "increments": 6}
        # A restart rebuilds with the new code: from the migrated snapshot plus the tail.
        await platform.restart_host()
        await eventually(lambda: _version_is(platform, "2.0.0"), what="2.0.0 after a restart")
        host = platform.host
        assert host is not None
        assert host.workers["counter"].state.model_dump() == {"total": 11, "increments": 6}


async def _at_least(load: Load, n: int) -> bool:
    return load.ok >= n


async def _version_is(platform: Platform, version: str) -> bool:
    host = platform.host
    if host is None or "counter" not in host.workers:
        return False
    return host.workers["counter"].definition.version == version
