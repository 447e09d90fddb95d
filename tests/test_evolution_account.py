"""The README's ``account`` agent through evolution, as a new user runs it: ``o-bus up`` as a
process (splitter, supervisor, agent processes, arbiter, sandboxed candidates: all real), the
CLI to deploy and evolve, and traffic in which about a quarter of the withdrawals are
rejected for insufficient funds. Rejections are answers, not errors: an identical refactor is
promoted, a candidate better by fitness is promoted, a worse one rolled back, with ``o-bus up``
restarted in the middle; too few requests give no verdict."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from processes import HeartbeatWatch, ProcessGroup, wait_for_service
from support import cli_json_lines, eventually, run_cli

from o_bus import client
from o_bus.common.children import ChildProcess
from o_bus.errors import OBusError

pytestmark = pytest.mark.slow

ACCOUNT = Path(__file__).parent / "agents_for_tests" / "account.py"
SPEC = f"{ACCOUNT}:account"
WITHDRAW_CHECK = "    if cmd.amount > state.balance:\n"
FAST = (
    "--min-requests",
    "40",
    "--min-canary-requests",
    "15",
    "--min-stage-seconds",
    "0.5",
)
# One cycle: deposits of 10 and withdrawals of 8, 12, 30 and 25: the balance stays low and
# about a third of the withdrawals (a sixth of all requests) are refused for insufficient funds.
CYCLE = [("deposit", 10), ("withdraw", 8), ("deposit", 10), ("withdraw", 12)]
CYCLE += [("deposit", 10), ("withdraw", 30), ("deposit", 10), ("withdraw", 25)]


def variant(version: str, check: str | None = None) -> str:
    """The account's source as another version, with the withdrawal check replaced."""
    source = ACCOUNT.read_text().replace('version="1.0.0"', f'version="{version}"')
    if check is not None:
        assert WITHDRAW_CHECK in source
        source = source.replace(WITHDRAW_CHECK, f"    {check}\n")
    return source


@dataclass
class Traffic:
    served: int = 0
    rejected: int = 0
    failed: list[str] = field(default_factory=list)
    paused: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def traffic(nc: Client, limit: int | None = None) -> AsyncIterator[Traffic]:
    """Deposits and withdrawals, one after another, until the block ends, or ``limit`` of
    them (the block then ends when all are answered); ``paused`` holds them (a restart)."""
    seen = Traffic()
    stop = asyncio.Event()

    async def loop() -> None:
        n = 0
        while not stop.is_set() and (limit is None or n < limit):
            if seen.paused.is_set():
                await asyncio.sleep(0.05)
                continue
            command, amount = CYCLE[n % len(CYCLE)]
            try:
                reply = await client.send(nc, "account", command, {"amount": amount})
            except OBusError as err:
                seen.failed.append(f"{command} {amount}: {err}")
                continue
            n += 1
            if reply["ok"]:
                seen.served += 1
            elif reply["error"]["code"] == "command_rejected":
                seen.rejected += 1
            else:
                seen.failed.append(f"{command} {amount}: {reply}")
            await asyncio.sleep(0.004)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        if limit is None:
            stop.set()
        await task


class Platform:
    """``o-bus up --nats URL --agent account.py:account`` as a process, restartable."""

    def __init__(self, group: ProcessGroup, nc: Client, url: str, data: Path) -> None:
        self.group, self.nc, self.url, self.data = group, nc, url, data
        self.proc: ChildProcess | None = None

    async def up(self) -> None:
        self.proc = self.group.spawn_cli(
            "up",
            "up",
            "--nats",
            self.url,
            "--agent",
            SPEC,
            "--metrics-port",
            "0",
            "--console-port",
            "0",
            "--data-dir",
            str(self.data),
        )
        await wait_for_service(self.nc, "arbiter")
        watch = await HeartbeatWatch().start(self.nc)

        async def active() -> bool:  # running, or evolving while a candidate is under test
            return any(beat.role == "active" for beat in watch.live("account").values())

        try:
            await eventually(active, what="an active account process", timeout=60)
        finally:
            await watch.stop()

    async def down(self) -> None:
        """Ctrl-C: `o-bus up` stops everything it started."""
        assert self.proc is not None
        self.proc.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(self.proc.wait, 60)
        assert code == 0, self.group.log_tails()

    async def cli(self, *args: str) -> dict[str, Any]:
        # The platform's data dir: deployments are signed with the key it trusts.
        data_dir = {"O_BUS_DATA_DIR": str(self.data)}
        code, out, err = await run_cli(*args, "--nats", self.url, "--json", env=data_dir)
        assert code == 0, err
        found: dict[str, Any] = cli_json_lines(out)[-1]
        return found

    async def deploy(self, folder: Path, version: str, check: str | None = None) -> str:
        path = folder / f"account_{version}.py"
        path.write_text(variant(version, check))
        return str((await self.cli("deploy", "account", str(path)))["digest"])

    async def status(self) -> dict[str, Any]:
        return await self.cli("evolve", "status", "account")

    async def finished(self) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            status = await self.status()
            return status if status["status"] not in ("requested", "running") else None

        found: dict[str, Any] = await eventually(done, what="the evolution to end", timeout=180)
        return found

    async def reached(self, stage: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            status = await self.status()
            assert status["status"] in ("requested", "running"), status["decisions"]
            return status if status["stage"] == stage else None

        found: dict[str, Any] = await eventually(probe, what=f"stage {stage}", timeout=120)
        return found

    async def following(self) -> None:
        """Until the candidate follows live (the shadow stage waits for traffic)."""

        async def probe() -> bool:
            last = (await self.status())["decisions"][-1]["reason"]
            return "waiting for traffic" in last

        await eventually(probe, what="the shadow to follow live", timeout=60)

    async def restart(self, seen: Traffic | None = None) -> None:
        if seen is not None:
            seen.paused.set()
        await self.down()
        await self.up()
        if seen is not None:
            seen.paused.clear()


@pytest.fixture
async def platform(
    nats_url: str, nc: Client, group: ProcessGroup, tmp_path: Path
) -> AsyncIterator[Platform]:
    running = Platform(group, nc, nats_url, tmp_path / "data")
    await running.up()
    yield running
    if running.proc is not None and running.proc.running():
        await running.down()


def _reasons(status: dict[str, Any]) -> str:
    return " | ".join(f"{d['action']}: {d['reason']}" for d in status["decisions"])


async def test_an_identical_refactor_is_promoted_across_a_restart_during_the_bake(
    platform: Platform, tmp_path: Path
) -> None:
    refactor = await platform.deploy(
        tmp_path, "1.0.1", "if state.balance < cmd.amount:  # same rule, written otherwise"
    )
    async with traffic(platform.nc) as seen:
        await platform.cli("evolve", "start", "account", refactor, *FAST, "--bake-seconds", "3")
        await platform.reached("live")
        await platform.restart(seen)  # the bake resumes from what the log holds
        done = await platform.finished()
    assert done["status"] == "promoted", _reasons(done)
    assert seen.rejected > 0.1 * (seen.served + seen.rejected)
    # Requests that failed are those sent while the platform was down, and only those.
    assert all("insufficient" not in f for f in seen.failed)
    shadow = next(d for d in done["decisions"] if d["action"] == "advance")
    assert shadow["metrics"]["differing"] == 0
    assert shadow["metrics"]["compared"] >= 40
    final = done["decisions"][-1]
    assert final["action"] == "done"
    # The baseline came from the log after the restart: live code's outcomes before the
    # canary, rejections among them, no errors.
    assert final["metrics"]["requests_before"] >= 40
    assert final["metrics"]["rejections_before"] > 0
    assert final["metrics"]["errors_before"] == 0
    assert final["metrics"]["errors"] == 0
    assert final["metrics"]["rejections"] > 0
    assert "answers not errors" in final["reason"]
    route = await platform.cli("route", "account")
    assert route["live"] == refactor


async def test_better_by_fitness_is_promoted_and_worse_rolled_back_across_a_restart(
    platform: Platform, tmp_path: Path
) -> None:
    worse = await platform.deploy(tmp_path, "0.9.0", "if cmd.amount > min(state.balance, 10):")
    better = await platform.deploy(tmp_path, "1.1.0", "if cmd.amount > state.balance + 50:")
    async with traffic(platform.nc) as seen:
        await platform.cli("evolve", "start", "account", worse, *FAST)
        rolled_back = await platform.finished()
    await platform.cli("evolve", "start", "account", better, *FAST, "--bake-seconds", "1")
    await platform.following()
    async with traffic(platform.nc, limit=20):
        pass  # evidence short of the minimum: the shadow stage is still undecided
    status = await platform.status()
    assert status["stage"] == "shadow", _reasons(status)
    await platform.restart(seen)  # the arbiter resumes the evolution at its stage
    async with traffic(platform.nc) as more:
        promoted = await platform.finished()
    assert rolled_back["status"] == "rolled_back", _reasons(rolled_back)
    assert "worse than live: fitness" in rolled_back["decisions"][-1]["reason"]
    assert promoted["status"] == "promoted", _reasons(promoted)
    passed = [d for d in promoted["decisions"] if d["action"] == "advance"]
    assert passed
    assert all(d["metrics"]["candidate_fitness"] > d["metrics"]["live_fitness"] for d in passed)
    assert "canary decided" in _reasons(promoted)
    route = await platform.cli("route", "account")
    assert route["live"] == better
    # `o-bus state` folds with the code live runs now, not the installed one.
    state = await platform.cli("state", "account", "--agent-def", SPEC)
    assert state["code_version"] == "1.1.0"
    assert seen.rejected > 0
    assert more.rejected > 0


async def test_too_few_requests_stay_inconclusive(platform: Platform, tmp_path: Path) -> None:
    refactor = await platform.deploy(tmp_path, "1.0.2", "if state.balance < cmd.amount:")
    await platform.cli(
        "evolve", "start", "account", refactor, "--min-requests", "1000", "--min-stage-seconds", "0"
    )
    await platform.following()
    async with traffic(platform.nc, limit=60) as seen:

        async def compared_all() -> dict[str, Any] | None:
            status = await platform.status()
            return status if status["metrics"].get("compared", 0) >= 60 else None

        status = await eventually(compared_all, what="60 requests compared", timeout=60)
    assert seen.served + seen.rejected == 60
    assert status["status"] == "running"
    assert {d["action"] for d in status["decisions"]} == {"start", "wait"}, _reasons(status)
    assert "waiting for traffic" in status["decisions"][-1]["reason"]
    assert "/1000 requests compared" in status["decisions"][-1]["reason"]
    await platform.cli("evolve", "abort", "account", "--reason", "test over")
    done = await platform.finished()
    assert done["status"] == "aborted"
