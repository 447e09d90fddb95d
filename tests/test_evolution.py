"""Evolution end to end: deploy a candidate, shadow it on live traffic, gate, promote or roll
back. Real nats-server, real sandboxed candidate processes, the arbiter in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from evolution_support import (
    FAST,
    deploy_source,
    running_arbiter,
    scorer_platform,
    scorer_source,
    start_evolution,
    steady_traffic,
)
from support import collect_events, eventually, run_cli, running_platform

from o_bus.evolution.routes import RouteStore
from o_bus.replay.system_history import read_system_history

pytestmark = pytest.mark.slow


async def test_a_refactor_differing_only_in_noise_is_promoted(
    nats_url: str, tmp_path: Path
) -> None:
    async with scorer_platform(nats_url, tmp_path) as (platform, spec):
        refactor = await deploy_source(
            platform.js, tmp_path, "refactor", scorer_source("1.1.0", "cmd.x + cmd.x")
        )
        async with running_arbiter(nats_url, spec) as arbiter, steady_traffic(platform) as seen:
            await start_evolution(
                platform.js, refactor, max_diff_rate=0.0, bake_seconds=0.5, **FAST
            )
            done = await arbiter.finished()
        assert done.status == "promoted", done.decisions
        assert [d.action for d in done.decisions][-1] == "done"
        assert not seen.failed
        route, _ = await RouteStore(platform.js).get("scorer")
        assert route.live == refactor.digest
        assert not route.shadows
        assert route.canary is None
        shadow_pass = next(
            d for d in done.decisions if d.stage == "shadow" and d.action == "advance"
        )
        # While the candidate was under test the agent was `evolving`, then `running` again.
        history: list[dict[str, Any]] = []
        await read_system_history(platform.js, "scorer", history.append)
        states = [h["state"] for h in history if h["kind"] == "lifecycle"]
        assert "evolving" in states
        assert states[-1] == "running"
        assert states.index("evolving") < len(states) - 1
        assert shadow_pass.metrics["differing"] == 0
        assert shadow_pass.metrics["compared"] >= 30


async def test_a_behaviour_change_is_caught_by_the_diff_and_rolled_back(
    nats_url: str, tmp_path: Path
) -> None:
    async with scorer_platform(nats_url, tmp_path) as (platform, spec):
        changed = await deploy_source(
            platform.js, tmp_path, "changed", scorer_source("1.2.0", "2 * cmd.x + 1")
        )
        async with running_arbiter(nats_url, spec) as arbiter, steady_traffic(platform) as seen:
            await start_evolution(platform.js, changed, max_diff_rate=0.0, **FAST)
            done = await arbiter.finished()
        assert done.status == "rolled_back"
        last = done.decisions[-1]
        assert last.action == "rollback", last
        assert "differs from live" in last.reason
        assert not seen.failed
        assert all(a % 2 == 0 for a in seen.answers)
        route, _ = await RouteStore(platform.js).get("scorer")
        assert route.live is None
        assert not route.shadows
        assert route.canary is None
        # The candidate's outputs are in the comparison stream, with live's, field by field.
        diff = await platform.js.get_msg("O_DIFF", subject="o.diff.scorer", direct=True)
        assert diff.data is not None
        assert b'"events.0.data.answer"' in diff.data
        assert b'"traffic":"shadow"' in diff.data
        # What an operator sees: the stage, the reasons, and the diff that decided it.
        code, out, err = await run_cli("evolve", "status", "scorer", "--nats", nats_url)
        assert code == 0, err
        assert "status rolled_back" in out
        assert "differs from live" in out
        assert "events.0.data.answer: live" in out
        # Shadows never write to the live log: every event there is live code's.
        events = await collect_events(platform.log("scorer"))
        assert events
        assert {e.code_version for e in events} == {"1.0.0"}


async def test_a_better_candidate_is_promoted_and_a_worse_one_rolled_back(
    nats_url: str, tmp_path: Path
) -> None:
    async with scorer_platform(nats_url, tmp_path) as (platform, spec):
        better = await deploy_source(
            platform.js, tmp_path, "better", scorer_source("2.0.0", "3 * cmd.x")
        )
        worse = await deploy_source(platform.js, tmp_path, "worse", scorer_source("0.9.0", "cmd.x"))
        async with running_arbiter(nats_url, spec) as arbiter, steady_traffic(platform) as seen:
            await start_evolution(platform.js, worse, **FAST)
            rolled_back = await arbiter.finished()
            await start_evolution(platform.js, better, bake_seconds=0.5, **FAST)
            promoted = await arbiter.finished()
            answered = seen.answered

            async def traffic_after_promotion() -> bool:
                return seen.answered >= answered + 5

            await eventually(traffic_after_promotion, what="answers after the promotion")
        assert rolled_back.status == "rolled_back"
        assert "worse than live" in rolled_back.decisions[-1].reason
        assert promoted.status == "promoted", promoted.decisions
        reasons = " | ".join(d.reason for d in promoted.decisions)
        assert "fitness" in reasons
        assert "canary decided" in reasons
        assert not seen.failed
        # After the promotion, live answers with the better code.
        reply = await platform.send("scorer", "guess", {"x": 5})
        assert reply["events"][0]["data"]["answer"] == 15
        events = await collect_events(platform.log("scorer"))
        assert {"1.0.0", "2.0.0"} <= {e.code_version for e in events}


async def test_bad_route_and_evolve_commands_get_clear_errors(nats_url: str) -> None:
    async with running_platform(nats_url) as platform:
        cases = [
            (("route", "nosuch"), "no agent named 'nosuch' [unknown_agent]"),
            (("route", "counter", "--live", "12"), "at least 4 hex digits"),
            (
                ("route", "counter", "--live", "abcdef"),
                "has no code version 'abcdef' (`o-bus versions counter` lists them) "
                "[unknown_code_version]",
            ),
            (("route", "counter", "--canary", "registered"), "takes a deployed code version"),
            (("evolve", "start", "counter", "deadbeef"), "has no code version 'deadbeef'"),
            (("evolve", "start", "counter"), "needs VERSION"),
            (("evolve", "status", "counter"), "has no evolution [unknown_evolution]"),
            (("evolve", "abort", "counter"), "has no evolution [unknown_evolution]"),
        ]
        for args, message in cases:
            code, out, err = await run_cli(*args, "--nats", nats_url)
            assert code == 2, (args, out, err)
            assert message in err, (args, err)
        # Nothing was changed by the refused commands.
        route, revision = await RouteStore(platform.js).get("counter")
        assert revision == 0
        assert route.live is None


async def test_an_operator_abort_rolls_back_a_waiting_evolution(
    nats_url: str, tmp_path: Path
) -> None:
    async with scorer_platform(nats_url, tmp_path) as (platform, spec):
        refactor = await deploy_source(
            platform.js, tmp_path, "refactor", scorer_source("1.1.0", "cmd.x + cmd.x")
        )
        async with running_arbiter(nats_url, spec) as arbiter:
            # No traffic: the shadow stage cannot pass and the evolution waits.
            await start_evolution(platform.js, refactor, **FAST)
            code, _, err = await run_cli(
                "evolve", "abort", "scorer", "--reason", "not today", "--nats", nats_url
            )
            assert code == 0, err
            done = await arbiter.finished()
        assert done.status == "aborted"
        assert "aborted by an operator" in done.decisions[-1].reason
        assert "not today" in done.decisions[-1].reason
        route, _ = await RouteStore(platform.js).get("scorer")
        assert route.live is None
        assert not route.shadows
