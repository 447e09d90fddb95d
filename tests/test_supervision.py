"""Supervision with real processes: failover to a warm standby, hang detection and fencing,
crash-loop escalation, and supervisors that die or run twice.

nats-server comes from the fixtures; the splitter, the supervisor(s) and the agent processes
the supervisor starts are real OS processes (`o-bus run ...`). Readiness and roles are read
from the agents' heartbeats on ``o.hb.<agent>``; what the supervisor decided, from its system
events on ``o.sys.agent.<agent>`` and its records in bucket ``o_supervisor``. Every process of
a test, agents included, is killed by PID at teardown (see ``processes.ProcessGroup``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from processes import (
    HeartbeatWatch,
    ProcessGroup,
    check_log,
    send_until_ok,
    supervision_record,
    system_events,
    system_mark,
    wait_for_service,
    wait_for_system_event,
)
from pydantic_core import from_json
from support import WAIT_SECONDS, collect_events, eventually, read_subject

from o_bus import client
from o_bus.agent.catalogue import Catalogue, load_definition
from o_bus.agent.definition import AgentDefinition
from o_bus.agents.counter import counter
from o_bus.agents.echo import echo
from o_bus.common.children import ChildProcess
from o_bus.errors import AgentUnavailableError, ConcurrencyError
from o_bus.handlers.supervisor.service import LEADER_KEY, RESET_SUBJECT
from o_bus.runtime.registration import register_definitions
from o_bus.store import layout
from o_bus.store.event_log import NewEvent, event_headers
from o_bus.store.jetstream_event_log import JetStreamEventLog
from o_bus.store.lease import LeaseStore
from o_bus.store.provision import ensure_agent_stream, provision
from o_bus.supervision.records import SupervisionPolicy

CRASHY_FILE = Path(__file__).parent / "agents_for_tests" / "crashy.py"
CRASHY_SPEC = f"{CRASHY_FILE.resolve()}:crashy"
CRASHY_EXIT_CODE = 13  # what crashy's `crash` handler exits with
FIX_FILE_ENV = "CRASHY_FIX_FILE"  # crashy rejects `crash` once this file exists

# Generous heartbeat timeouts: a busy test machine must not make a healthy process look hung.
# Only the hang tests use a shorter one.
WITH_STANDBY = SupervisionPolicy(standby=True, max_restarts=10, heartbeat_timeout=3.0)
Supervisor = ChildProcess


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
async def watch(nc: Client) -> AsyncIterator[HeartbeatWatch]:
    heartbeats = await HeartbeatWatch().start(nc)
    try:
        yield heartbeats
    finally:
        await heartbeats.stop()


async def start_platform(
    nc: Client,
    group: ProcessGroup,
    policy: SupervisionPolicy,
    definitions: Sequence[AgentDefinition[Any]] = (counter,),
    *,
    supervisors: int = 1,
    agent_specs: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> list[Supervisor]:
    """Provision, register ``definitions`` under ``policy``, start a splitter and the
    supervisors (which start the agents); return the supervisor processes."""
    js = nc.jetstream()
    await provision(js)
    await register_definitions(js, Catalogue(list(definitions)), policy)
    group.spawn("splitter")
    args = [arg for spec in agent_specs for arg in ("--agent", spec)]
    started = [group.spawn("supervisor", *args, env=env) for _ in range(supervisors)]
    await wait_for_service(nc, "splitter")
    await wait_for_service(nc, "supervisor")
    return started


async def observe(
    watch: HeartbeatWatch, agents: Sequence[str], seconds: float
) -> dict[str, tuple[set[int], set[int]]]:
    """For each agent: (pids that sent a heartbeat, pids that said they were active) while
    waiting ``seconds``."""
    start = time.monotonic()
    await asyncio.sleep(seconds)
    return {
        agent: (watch.pids_since(agent, start), watch.pids_since(agent, start, role="active"))
        for agent in agents
    }


async def counter_value(nc: Client, request_id: str) -> int:
    """The counter's value as the serving process holds it in memory: ``reset`` reports the
    value it replaces (and sets it to 0)."""
    reply = await send_until_ok(nc, "counter", "reset", None, request_id)
    previous: int = reply["events"][0]["data"]["previous"]
    return previous


async def leader_and_follower(
    js: JetStreamContext, supervisors: list[Supervisor]
) -> tuple[Supervisor, Supervisor]:
    """The supervisor process that holds the leadership lease, and the other one."""
    lease = await LeaseStore(js).current(LEADER_KEY)
    assert lease is not None
    [leader] = [proc for proc in supervisors if proc.pid == lease.holder.pid]
    [follower] = [proc for proc in supervisors if proc is not leader]
    return leader, follower


async def wait_for_leader(js: JetStreamContext, pid: int, timeout: float = 30.0) -> None:
    async def leads() -> bool:
        lease = await LeaseStore(js).current(LEADER_KEY)
        return lease is not None and lease.holder.pid == pid

    await eventually(leads, what=f"supervisor {pid} to lead", timeout=timeout)


# -- 1. kill -9 of the active, with a warm standby ---------------------------------------------


@pytest.mark.slow
async def test_kill_9_of_the_active_hands_over_to_the_warm_standby(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    await start_platform(nc, group, WITH_STANDBY)
    roles = await watch.wait_serving("counter", standbys=1)
    active, standby = roles["active"][0], roles["standby"][0]

    for i in range(1, 6):
        reply = await send_until_ok(nc, "counter", "increment", {"by": i}, f"before-{i}")
    assert reply["seq"] == 5

    mark = await system_mark(js)
    killed_at = time.monotonic()
    os.kill(active, signal.SIGKILL)
    reply = await send_until_ok(nc, "counter", "increment", {"by": 100}, "after-kill")
    print(f"kill -9 of the active -> next successful reply: {time.monotonic() - killed_at:.3f} s")
    assert reply["seq"] == 6  # the sequence continues: nothing lost, nothing applied twice

    # The standby took over with its warm state: the value continues exactly.
    assert await counter_value(nc, "read-value") == 15 + 100

    async def served_by_former_standby() -> bool:
        beat = watch.live("counter").get(standby)
        return beat is not None and beat.role == "active" and beat.requests >= 2

    await eventually(served_by_former_standby, what="the former standby to report its requests")

    crash = await wait_for_system_event(js, "counter", "crash", after=mark, pid=active)
    assert "-9" in crash.reason
    takeover = await wait_for_system_event(js, "counter", "takeover", after=mark, pid=standby)
    assert str(active) in takeover.reason

    # A new standby replaces the one that became active.
    async def new_standby() -> int | None:
        roles = watch.serving("counter", standbys=1)
        if roles is None or roles["active"] != [standby]:
            return None
        fresh = [pid for pid in roles["standby"] if pid not in (active, standby)]
        return fresh[0] if fresh else None

    replacement: int = await eventually(new_standby, what="a new standby for counter")
    await wait_for_system_event(js, "counter", "start", after=mark, pid=replacement)

    events = await check_log(nc, js, "counter")
    assert [e.request_id for e in events] == [
        *(f"before-{i}" for i in range(1, 6)),
        "after-kill",
        "read-value",
    ]


# -- 2. SIGSTOP of the active: hang detection, takeover, the old one is fenced -----------------


@pytest.mark.slow
async def test_a_hung_active_is_replaced_and_steps_down_when_it_wakes(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    policy = SupervisionPolicy(standby=True, max_restarts=10, heartbeat_timeout=1.5)
    await start_platform(nc, group, policy)
    roles = await watch.wait_serving("counter", standbys=1)
    hung, standby = roles["active"][0], roles["standby"][0]
    sent: list[tuple[str, int]] = []

    async def increment(request_id: str, by: int) -> None:
        await send_until_ok(nc, "counter", "increment", {"by": by}, request_id, attempt_timeout=3)
        sent.append((request_id, by))

    for i in range(5):
        await increment(f"before-{i}", 1)

    mark = await system_mark(js)
    os.kill(hung, signal.SIGSTOP)
    try:
        # Sent while the active is frozen: served once the standby has taken over.
        for i in range(5):
            await increment(f"during-{i}", 10)
        await wait_for_system_event(js, "counter", "hung", after=mark, pid=hung)
        await wait_for_system_event(js, "counter", "takeover", after=mark, pid=standby)
        holder = (await watch.wait_role("counter", standby, "active")).holder
    finally:
        os.kill(hung, signal.SIGCONT)

    # The old active wakes up, finds its lease gone or the log fenced, and exits with code 3.
    stepped_down = await wait_for_system_event(js, "counter", "exit", after=mark, pid=hung)
    assert "fenced" in stepped_down.reason

    async def gone() -> bool:
        return not group.pid_alive(hung)

    await eventually(gone, what=f"the old active {hung} to exit")

    await increment("after-0", 100)
    after_exit = time.monotonic()
    for i in range(1, 5):
        await increment(f"after-{i}", 100)

    # Its late writes were refused: the log is contiguous, each request is in it exactly once.
    events = await check_log(nc, js, "counter")
    assert sorted(e.request_id or "" for e in events) == sorted(rid for rid, _ in sent)
    assert await counter_value(nc, "read-value") == sum(by for _, by in sent)

    async def beats_since_exit() -> bool:  # a few heartbeats, each from an active process
        return len([b for b in watch.since("counter", after_exit) if b.role == "active"]) >= 5

    await eventually(beats_since_exit, what="heartbeats of the active after the old one left")
    assert watch.pids_since("counter", after_exit, role="active") == {standby}

    # The takeover is marked in the log by the new active's fence.
    fences = await read_subject(
        js, layout.events_stream("counter"), layout.fence_subject("counter")
    )
    assert (fences[-1].headers or {}).get("O-Holder") == holder


async def test_a_stopping_supervisor_does_not_take_the_agents_it_stops_for_hung(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    """An agent that goes silent while its supervisor stops it is being stopped, not hung: no
    `hung` event in the history of a clean shutdown. The agent here is frozen, so the
    supervisor waits for it (then kills it) far longer than the heartbeat timeout."""
    js = nc.jetstream()
    policy = SupervisionPolicy(standby=False, max_restarts=10, heartbeat_timeout=1.5)
    [supervisor] = await start_platform(nc, group, policy)
    [active] = (await watch.wait_serving("counter"))["active"]
    mark = await system_mark(js)
    os.kill(active, signal.SIGSTOP)
    supervisor.terminate()
    assert supervisor.wait(WAIT_SECONDS) == 0
    assert not group.pid_alive(active)  # killed once the stop's grace ran out
    kinds = [event.type for event in await system_events(js, "counter", after=mark)]
    assert "hung" not in kinds, kinds


async def test_a_writer_behind_a_fence_cannot_append(nc: Client) -> None:
    """Unit level: what stops a paused old active. A writer that takes over fences the log;
    the old writer's appends, made from the position it knew, are refused."""
    js = nc.jetstream()
    await provision(js)
    agent = "fenced"
    await ensure_agent_stream(js, agent)

    def event(seq: int, request_id: str) -> NewEvent:
        body = b'{"by":1}'
        return NewEvent(body, event_headers(agent, seq, "incremented", 1, request_id, seq, "1", ""))

    old, new = JetStreamEventLog(nc, js, agent), JetStreamEventLog(nc, js, agent)
    old_position = await old.append(0, [event(1, "r1")])
    end = await new.last_position()
    assert end.guard_seq == old_position
    fence = await new.fence(end.guard_seq, "new-writer", end.wal_seq)

    with pytest.raises(ConcurrencyError):
        await old.append(old_position, [event(2, "late")])
    with pytest.raises(ConcurrencyError):
        await old.append(old_position, [event(2, "late-a"), event(3, "late-b")])
    with pytest.raises(ConcurrencyError):
        await old.append(old_position, [event(2, "late-c"), event(3, "late-d")], atomic=True)
    assert (await new.last_position()).guard_seq == fence, "nothing of the old writer landed"

    await new.append(fence, [event(2, "r2")])
    assert [(e.seq, e.request_id) for e in await collect_events(new)] == [(1, "r1"), (2, "r2")]


# -- 3. crash loop: escalation ------------------------------------------------------------------


async def crash_until_escalated(nc: Client, js: JetStreamContext) -> str:
    """Send crashy its poison request; return the escalation's reason once the supervisor
    has given up (each restarted process gets the request again from the WAL)."""
    mark = await system_mark(js)
    with pytest.raises(AgentUnavailableError):  # the process dies on it: no reply
        await client.send(nc, "crashy", "crash", None, request_id="poison", timeout=1.0)
    escalation = await wait_for_system_event(js, "crashy", "escalation", after=mark)
    events = await system_events(js, "crashy", after=mark)
    crashes = [e for e in events if e.type == "crash"]
    assert len(crashes) == 3, events  # the first run and max_restarts=2 restarts
    assert all(f"exit code {CRASHY_EXIT_CODE}" in e.reason for e in crashes), crashes
    assert [e.type for e in events].count("restart") == 2, events
    return escalation.reason


@pytest.mark.slow
async def test_a_crash_loop_escalates_and_the_agent_is_refused(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    policy = SupervisionPolicy(
        max_restarts=2, period=60, backoff_initial=0.05, backoff_max=0.2, heartbeat_timeout=3.0
    )
    crashy = load_definition(CRASHY_SPEC)
    await start_platform(nc, group, policy, [crashy], agent_specs=[CRASHY_SPEC])
    await watch.wait_serving("crashy")
    assert (await send_until_ok(nc, "crashy", "increment", {"by": 1}, "first"))["seq"] == 1

    reason = await crash_until_escalated(nc, js)
    assert "more than 2 restarts within 60s" in reason
    assert f"exit code {CRASHY_EXIT_CODE}" in reason

    record = await supervision_record(js, "crashy")
    assert record is not None
    assert record.status == "failed"
    assert record.reason == reason
    assert record.processes == []

    # The splitter refuses at once, with the reason, rather than letting the request time out.
    reply = await client.send(nc, "crashy", "increment", {"by": 1}, timeout=10.0)
    assert not reply["ok"]
    assert reply["error"]["code"] == "unavailable"
    assert "has failed" in reply["error"]["message"]
    assert reason in reply["error"]["message"]

    # Nothing runs it any more.
    async def no_process() -> bool:
        return not watch.live("crashy", within=1.0)

    await eventually(no_process, what="crashy to have no live process")


@pytest.mark.slow
async def test_reset_restarts_a_failed_agent_which_crashes_again_until_fixed(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch, tmp_path: Path
) -> None:
    js = nc.jetstream()
    policy = SupervisionPolicy(
        max_restarts=2, period=60, backoff_initial=0.05, backoff_max=0.2, heartbeat_timeout=3.0
    )
    crashy = load_definition(CRASHY_SPEC)
    fix = tmp_path / "crashy-fixed"
    await start_platform(
        nc,
        group,
        policy,
        [crashy],
        agent_specs=[CRASHY_SPEC],
        env={FIX_FILE_ENV: str(fix)},
    )
    await watch.wait_serving("crashy")
    assert (await send_until_ok(nc, "crashy", "increment", {"by": 1}, "first"))["seq"] == 1
    await crash_until_escalated(nc, js)

    async def reset() -> None:
        reply = await nc.request(RESET_SUBJECT, b"crashy", timeout=10)
        assert from_json(reply.data) == {"ok": True, "agent": "crashy"}

    # Reset without a fix: the poison request is still next in the WAL; it crashes again.
    mark = await system_mark(js)
    await reset()
    await wait_for_system_event(js, "crashy", "start", after=mark)
    await wait_for_system_event(js, "crashy", "escalation", after=mark)

    # Fix, then reset: the poison request is rejected this time, and the agent serves again.
    fix.touch()
    await reset()
    await watch.wait_serving("crashy")
    reply = await send_until_ok(nc, "crashy", "increment", {"by": 1}, "after-fix")
    assert reply["seq"] == 2
    record = await supervision_record(js, "crashy")
    assert record is not None
    assert record.status == "running"


# -- 4. the supervisor is killed and restarted ---------------------------------------------------


@pytest.mark.slow
async def test_a_restarted_supervisor_adopts_the_running_agents(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    [first] = await start_platform(nc, group, WITH_STANDBY)
    roles = await watch.wait_serving("counter", standbys=1)
    agents = {*roles["active"], *roles["standby"]}
    assert len(agents) == 2
    sent = 0
    for i in range(3):
        await send_until_ok(nc, "counter", "increment", {"by": 1}, f"before-{i}")
        sent += 1

    assert group.kill(first) == -signal.SIGKILL
    # The agents run on without their supervisor.
    for i in range(3):
        await send_until_ok(nc, "counter", "increment", {"by": 1}, f"unsupervised-{i}")
        sent += 1

    mark = await system_mark(js)
    second = group.spawn("supervisor")
    for pid in agents:
        await wait_for_system_event(js, "counter", "adopt", after=mark, pid=pid)

    # No duplicates: the same processes, one active, for a few seconds; still serving.
    seen = asyncio.create_task(observe(watch, ["counter"], 3.0))
    for i in range(5):
        await send_until_ok(nc, "counter", "increment", {"by": 1}, f"adopted-{i}")
        sent += 1
    pids, active = (await seen)["counter"]
    assert pids == agents
    assert active == set(roles["active"])
    assert [e for e in await system_events(js, "counter", after=mark) if e.type == "start"] == []

    record = await supervision_record(js, "counter")
    assert record is not None
    assert record.supervisor.endswith(f":{second.pid}")
    assert {p.pid for p in record.processes} == agents
    assert len(await check_log(nc, js, "counter")) == sent


@pytest.mark.slow
async def test_an_adopted_process_that_dies_is_seen_to_crash(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    group.adopt_orphans()  # orphaned agents that die stay zombies, deterministically
    js = nc.jetstream()
    [first] = await start_platform(nc, group, WITH_STANDBY)
    roles = await watch.wait_serving("counter", standbys=1)
    active, standby = roles["active"][0], roles["standby"][0]
    group.kill(first)
    mark = await system_mark(js)
    group.spawn("supervisor")
    for pid in (active, standby):
        await wait_for_system_event(js, "counter", "adopt", after=mark, pid=pid)

    mark = await system_mark(js)
    os.kill(active, signal.SIGKILL)
    await send_until_ok(nc, "counter", "increment", {"by": 1}, "after-kill")

    async def noticed() -> Any:
        for event in await system_events(js, "counter", after=mark):
            if event.pid == active and event.type in ("crash", "hung"):
                return event
        return None

    notice = await eventually(noticed, what=f"the supervisor to notice that {active} died")
    assert notice.type == "crash", notice

    async def replaced() -> set[int] | None:
        roles = watch.serving("counter", standbys=1)
        if roles is None or roles["active"] != [standby] or len(roles["standby"]) != 1:
            return None
        return {standby, *roles["standby"]}

    live: set[int] = await eventually(replaced, what="a new standby for counter")
    record = await supervision_record(js, "counter")
    assert record is not None
    assert {p.pid for p in record.processes} == live


# -- 5. two supervisors against the same NATS ----------------------------------------------------


@pytest.mark.slow
async def test_two_supervisors_never_run_an_agent_twice(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    names = ["counter", "echo"]
    supervisors = await start_platform(nc, group, WITH_STANDBY, [counter, echo], supervisors=2)
    for name in names:
        await watch.wait_serving(name, standbys=1)

    seen = await observe(watch, names, 3.0)
    agents: dict[str, set[int]] = {}
    for name in names:
        pids, active = seen[name]
        assert len(pids) == 2, f"{name}: processes {pids}, wanted an active and a standby"
        assert len(active) == 1, f"{name}: more than one active process: {active}"
        starts = [e for e in await system_events(js, name) if e.type == "start"]
        assert len(starts) == 2, starts
        agents[name] = pids

    leader, other = await leader_and_follower(js, supervisors)

    mark = await system_mark(js)
    assert group.kill(leader) == -signal.SIGKILL
    reply = await send_until_ok(nc, "counter", "increment", {"by": 1}, "leaderless")
    assert reply["seq"] == 1
    for name, pids in agents.items():
        for pid in pids:
            await wait_for_system_event(js, name, "adopt", after=mark, pid=pid)
    await wait_for_leader(js, other.pid)

    seen = await observe(watch, names, 2.0)
    for name in names:
        pids, active = seen[name]
        assert pids == agents[name]
        assert len(active) == 1
        assert [e for e in await system_events(js, name, after=mark) if e.type == "start"] == []
    reply = await send_until_ok(nc, "counter", "increment", {"by": 1}, "after-failover")
    assert reply["seq"] == 2
    echoed = await send_until_ok(nc, "echo", "say", {"text": "still here"}, "echo-after")
    assert echoed["ok"]


@pytest.mark.slow
async def test_a_paused_leader_is_replaced_and_stands_down_when_it_wakes(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    supervisors = await start_platform(nc, group, WITH_STANDBY, supervisors=2)
    roles = await watch.wait_serving("counter", standbys=1)
    agents = {*roles["active"], *roles["standby"]}
    leader, follower = await leader_and_follower(js, supervisors)

    mark = await system_mark(js)
    os.kill(leader.pid, signal.SIGSTOP)
    try:
        await wait_for_leader(js, follower.pid)
        for pid in agents:
            await wait_for_system_event(js, "counter", "adopt", after=mark, pid=pid)
    finally:
        os.kill(leader.pid, signal.SIGCONT)

    # The old leader wakes up, finds its lease gone and stands down: it neither starts nor
    # stops agents. Same processes, one active, still serving.
    seen = asyncio.create_task(observe(watch, ["counter"], 3.0))
    for i in range(5):
        await send_until_ok(nc, "counter", "increment", {"by": 1}, f"after-wake-{i}")
    pids, active = (await seen)["counter"]
    assert pids == agents
    assert active == set(roles["active"])
    assert [e.type for e in await system_events(js, "counter", after=mark)] == ["adopt", "adopt"]
    assert leader.running(), "the old leader keeps running, as a follower"
    await wait_for_leader(js, follower.pid)


@pytest.mark.slow
async def test_a_supervisor_that_lost_its_leadership_can_lead_again(
    nc: Client, group: ProcessGroup, watch: HeartbeatWatch
) -> None:
    js = nc.jetstream()
    supervisors = await start_platform(nc, group, WITH_STANDBY, supervisors=2)
    roles = await watch.wait_serving("counter", standbys=1)
    agents = {*roles["active"], *roles["standby"]}
    first, second = await leader_and_follower(js, supervisors)

    os.kill(first.pid, signal.SIGSTOP)
    try:
        await wait_for_leader(js, second.pid)
        await wait_for_system_event(js, "counter", "adopt", pid=roles["active"][0])
    finally:
        os.kill(first.pid, signal.SIGCONT)

    async def stood_down() -> bool:
        return "lost its leadership; standing down" in group.output(first)

    await eventually(stood_down, what=f"supervisor {first.pid} to wake up and stand down")

    mark = await system_mark(js)
    assert group.kill(second) == -signal.SIGKILL
    # The lease of the dead leader expires after 2 s; the first one should lead again.
    await wait_for_leader(js, first.pid, timeout=15.0)
    for pid in agents:
        await wait_for_system_event(js, "counter", "adopt", after=mark, pid=pid)
    await send_until_ok(nc, "counter", "increment", {"by": 1}, "led-again")
