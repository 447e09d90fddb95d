"""The platform knows its agents: registered with their code, resumed by the next `o-bus up`
without flags, added and removed while it runs; an agent whose code cannot be loaded is
reported and stopped while the others keep serving."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from nats.aio.client import Client
from platform_process import UpProcess
from processes import send_until_ok, wait_for_system_event
from support import eventually, run_cli

from o_bus.store.event_records import utc_now
from o_bus.store.provision import ensure_agent_stream
from o_bus.store.registry import AgentRecord, Registry

pytestmark = pytest.mark.slow

CRASHY = f"{Path(__file__).parent / 'agents_for_tests' / 'crashy.py'}:crashy"


@pytest.fixture(scope="module")
def up_args() -> tuple[str, ...]:
    return ("--splitters", "1")


async def _connect(url: str) -> Client:
    nc = Client()
    await nc.connect(url, connect_timeout=5, max_reconnect_attempts=-1)
    return nc


async def test_an_agent_added_with_up_is_resumed_by_the_next_up_without_the_flag(
    tmp_path: Path,
) -> None:
    first = UpProcess(tmp_path / "data", "--splitters", "1", "--agent", CRASHY)
    try:
        first.start()
        nc = await _connect(await asyncio.to_thread(first.wait_up))
        await send_until_ok(nc, "crashy", "increment", {"by": 3}, "a1")
        await nc.close()
        os.kill(first.pid, signal.SIGTERM)
        assert first.proc is not None
        assert await asyncio.to_thread(first.proc.wait, 60) == 0
    finally:
        first.close()
    second = UpProcess(tmp_path / "data", "--splitters", "1")  # no --agent
    try:
        second.start()
        nc = await _connect(await asyncio.to_thread(second.wait_up))
        reply = await send_until_ok(nc, "crashy", "increment", {"by": 4}, "a2")
        assert reply["seq"] == 2
        await nc.close()
        assert "no active process" not in second.output()
    finally:
        second.close()


async def test_agents_are_added_and_removed_on_a_running_platform(
    up: UpProcess, platform_nc: Client
) -> None:
    code, out, err = await run_cli("agent", "add", CRASHY, "--name", "acct", "--nats", up.url)
    assert code == 0, err
    assert '"added": "acct"' in out
    await send_until_ok(platform_nc, "acct", "increment", {"by": 2}, "x1")
    assert up.children("agent")

    def acct_processes() -> list[int]:
        return [p for p in up.children("agent") if "acct" in _cmdline(p)]

    assert acct_processes()
    code, _, err = await run_cli("agent", "remove", "acct", "--nats", up.url)
    assert code == 0, err

    async def stopped() -> bool:
        return not acct_processes()

    await eventually(stopped, what="acct's processes to stop")
    await send_until_ok(platform_nc, "counter", "increment", {"by": 1}, "still-serving")
    code, _, err = await run_cli("agent", "remove", "acct", "--nats", up.url)
    assert code != 0
    assert "no agent named 'acct'" in err


async def test_an_agent_whose_code_cannot_be_loaded_is_reported_and_the_others_serve(
    up: UpProcess, platform_nc: Client
) -> None:
    js = platform_nc.jetstream()
    await ensure_agent_stream(js, "broken")
    missing_code = "sha256:" + "0" * 64  # e.g. a code store that lost the object
    await Registry(js).register(
        AgentRecord(name="broken", definition="crashy", created_at=utc_now(), code=missing_code)
    )
    escalation = await wait_for_system_event(js, "broken", "escalation")
    assert "code cannot be loaded" in escalation.reason
    await send_until_ok(platform_nc, "counter", "increment", {"by": 1}, "others-serve")
    assert up.proc is not None
    assert up.proc.poll() is None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
