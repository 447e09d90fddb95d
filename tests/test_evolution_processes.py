"""Evolution as an operator runs it: real processes and the CLI.

The splitter, the supervisor (each agent in its own process, with a warm standby) and the
arbiter run as `o-bus run ...` processes. The operator deploys a version, starts an
evolution, watches its status and routes with the CLI, while a client keeps sending. The
active and the standby both end on the new code, and no request failed."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from processes import HeartbeatWatch, ProcessGroup, wait_for_service
from support import cli_result, collect_events, eventually

from o_bus import client
from o_bus.agent.catalogue import Catalogue
from o_bus.agents.counter import counter
from o_bus.errors import AgentUnavailableError
from o_bus.evolution.candidate.stats import CandidateStats
from o_bus.runtime.registration import register_definitions
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.provision import provision
from o_bus.supervision.records import SupervisionPolicy

pytestmark = pytest.mark.slow

COUNTER_SOURCE = Path(__file__).parent.parent / "agents" / "counter.py"
POLICY = SupervisionPolicy(standby=True, max_restarts=10, heartbeat_timeout=3.0)


@contextlib.asynccontextmanager
async def increments(nc: Client) -> AsyncIterator[list[str]]:
    failures: list[str] = []
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                reply = await client.send(nc, "counter", "increment", {"by": 1})
            except AgentUnavailableError as err:
                failures.append(str(err))
                continue
            if not reply["ok"]:
                failures.append(str(reply))
            await asyncio.sleep(0.002)

    task = asyncio.create_task(loop())
    try:
        yield failures
    finally:
        stopping.set()
        await task


async def cli(nats_url: str, *args: str) -> dict[str, object]:
    found: dict[str, object] = await cli_result(*args, "--nats", nats_url)
    return found


async def test_operator_deploys_evolves_and_promotes_with_standby(
    nats_url: str, nc: Client, group: ProcessGroup, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue([counter]), POLICY)
    for service in ("splitter", "supervisor", "arbiter"):
        group.spawn(service)
        await wait_for_service(nc, service)
    watch = await HeartbeatWatch().start(nc)
    try:
        await watch.wait_serving("counter", standbys=1)
        source = tmp_path / "counter_next.py"
        source.write_text(COUNTER_SOURCE.read_text().replace('"1.0.0"', '"1.0.1"'))
        deployed = await cli(nats_url, "deploy", "counter", str(source), "--note", "refactor")
        digest = str(deployed["digest"])
        async with increments(nc) as failures:
            started = await cli(
                nats_url,
                "evolve",
                "start",
                "counter",
                digest[7:19],
                "--min-requests",
                "30",
                "--min-canary-requests",
                "10",
                "--min-stage-seconds",
                "0.5",
                "--bake-seconds",
                "0.5",
            )
            assert started["status"] == "requested"

            async def finished() -> dict[str, object] | None:
                status = await cli(nats_url, "evolve", "status", "counter")
                return status if status["status"] not in ("requested", "running") else None

            done = await eventually(finished, what="the evolution to finish", timeout=90)

            async def both_on_new_code() -> bool:
                live = watch.live("counter")
                return len(live) == 2 and {b.code_version for b in live.values()} == {"1.0.1"}

            await eventually(both_on_new_code, what="active and standby on 1.0.1")
        assert done["status"] == "promoted", done["decisions"]
        actions = [d["action"] for d in done["decisions"]]
        assert actions[0] == "start"
        assert actions[-1] == "done"
        assert actions.count("advance") == 3  # shadow, canary 10 %, canary 50 %
        assert actions.index("promote") > actions.index("advance")
        assert failures == []
        route = await cli(nats_url, "route", "counter")
        assert route["live"] == digest
        assert route["shadows"] == []
        assert route["canary"] is None
        events = await collect_events(JetStreamEventLog(nc, js, "counter"))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].code_version == "1.0.1"
    finally:
        await watch.stop()


async def test_a_new_arbiter_resumes_an_evolution_and_orphans_stop(
    nats_url: str, nc: Client, group: ProcessGroup, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await provision(js)
    await register_definitions(
        js, Catalogue([counter]), POLICY.model_copy(update={"standby": False})
    )
    for service in ("splitter", "supervisor"):
        group.spawn(service)
        await wait_for_service(nc, service)
    first = group.spawn("arbiter")
    await wait_for_service(nc, "arbiter")
    candidates: dict[int, CandidateStats] = {}

    async def on_stats(msg: Msg) -> None:
        stats = CandidateStats.model_validate_json(msg.data)
        candidates[stats.pid] = stats

    sub = await nc.subscribe("o.cand.counter.*.stats", cb=on_stats)
    source = tmp_path / "counter_next.py"
    source.write_text(COUNTER_SOURCE.read_text().replace('"1.0.0"', '"1.0.2"'))
    digest = str((await cli(nats_url, "deploy", "counter", str(source)))["digest"])
    # No traffic yet: the shadow stage cannot pass, the evolution waits.
    await cli(nats_url, "evolve", "start", "counter", digest, "--min-stage-seconds", "0.5")
    orphan = await eventually(lambda: _one_pid(candidates), what="the candidate process")
    group.kill(first)
    # The candidate notices its arbiter is gone and stops.
    await eventually(lambda: _gone(orphan), what=f"orphaned candidate {orphan} to stop")
    candidates.clear()
    group.spawn("arbiter")
    async with increments(nc) as failures:

        async def finished() -> dict[str, object] | None:
            status = await cli(nats_url, "evolve", "status", "counter")
            return status if status["status"] not in ("requested", "running") else None

        done = await eventually(finished, what="the resumed evolution to finish", timeout=90)
    await sub.unsubscribe()
    assert done["status"] == "promoted", done["decisions"]
    assert failures == []
    assert orphan not in candidates  # the new arbiter ran a new candidate process


async def _one_pid(candidates: dict[int, CandidateStats]) -> int | None:
    return next(iter(candidates), None)


async def _gone(pid: int) -> bool:
    return _exited(pid)


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited too
        return stat.read().split(") ", 1)[1].startswith("Z")
